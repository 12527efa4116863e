/** The data sets of API.md §6, in one object (each generator is seeded and lives in the core). */
import { spirals } from './spirals.js';
import { mnist, mnistFromIdx } from './mnist.js';

export const datasets = { spirals, mnist, mnistFromIdx };
