/** neurode: Neural ODEs for JavaScript, computed in a SIMD WebAssembly core. */
export { NeurodeError, type ErrorCode } from './errors.js';
export { init, isInitialized, memoryStats, resetPeakMemory, type WasmSource } from './wasm.js';
export { odeint, METHODS, ADAPTIVE_METHODS, type Rhs, type SolveOptions, type SolveStats, type Solution, type Dtype, type Method } from './odeint.js';
export { odeintEvent, type EventSpec, type EventFunction, type EventOptions, type EventSolution, type EventOccurrence, type EventGrads } from './events.js';
export { odeintWithGrad, GRAD_MODES, type GradMode, type GradOptions, type Grads, type GradSolution, type Vjp, type VjpPair } from './grad.js';
export { nn, VectorField, fnv1a, paramDigest, ACTIVATIONS, type Activation, type Layer, type MlpOptions, type VectorFieldJSON } from './nn.js';
export { optim, Optimizer } from './optim.js';
export { fitLoop, shardRanges, sumInOrder, random, lossAndGrad, yieldToEventLoop, computeShards, combineShards, registerShardKernel, type ShardJob, type ShardResult, type ShardRunner, type FitOptions, type History, type Progress, type StepResult, type Checkpoint } from './train.js';
export { fitTrajectory, type TrajectoryData, type TrajectoryFitOptions } from './trajectory.js';
export { LatentODE, RNNBaseline, packSeries, type TimeSeriesBatch, type LatentODEOptions, type LatentFitOptions, type RNNBaselineOptions, type Encoder } from './latent.js';
export { spirals, type SpiralsOptions, type Spirals } from './spirals.js';
export { WorkerPool, type PoolOptions, type PoolStats } from './pool.js';
export { ODENetClassifier, type ODENetClassifierOptions, type ClassifierFitOptions, type ClassifierArch, type ClassifierStep, type ClassifierJSON } from './odenet.js';
export { mnist, mnistFromIdx, parseIdx, mnistTrainCounts, type MnistData, type LabeledImages } from './mnist.js';
export { mnistTable, formatTable1, TABLE1_MODELS, type Table1Model, type Table1Options, type Table1Row } from './mnist-table.js';
export { datasets, toyData, twoCircles, twoMoons, pinwheel, eightGaussians, checkerboard, TOY_DATASETS, type ToyDataset } from './datasets.js';
export { CNF, CNF_TARGETS, targetLogDensity, gaussianBaselineNll, densityGrid, type CNFOptions, type CNFFitOptions, type CNFTarget, type LogDensityFn, type TraceMode } from './cnf.js';
