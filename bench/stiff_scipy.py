"""Side-by-side figures for bench/stiff.mjs: SciPy's Radau and BDF on the same stiff problems,
tolerances and finite-difference Jacobians (no analytic Jacobian, as neurode's JS right-hand
side). Prints one JSON object. Run by the benchmark in a separate process; never by the tests."""
import json, sys, time
import numpy as np
from scipy.integrate import solve_ivp
import scipy

def rob(t, y):
    return [-0.04 * y[0] + 1e4 * y[1] * y[2], 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2, 3e7 * y[1] ** 2]

MU = 1000.0
def vdp(t, y):
    return [y[1], MU * (1 - y[0] ** 2) * y[1] - y[0]]

PROBLEMS = {
    'robertson': (rob, (0.0, 1e5), [1.0, 0.0, 0.0], 1e-6, [1e-12, 1e-16, 1e-12]),
    'vanDerPol1000': (vdp, (0.0, 3000.0), [2.0, 0.0], 1e-6, 1e-8),
}

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
out = {'scipy': scipy.__version__, 'python': sys.version.split()[0], 'rows': []}
for name, (f, span, y0, rtol, atol) in PROBLEMS.items():
    for method in ('Radau', 'BDF'):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            r = solve_ivp(f, span, y0, method=method, rtol=rtol, atol=atol)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out['rows'].append({'problem': name, 'method': method, 'nfe': int(r.nfev), 'njev': int(r.njev), 'nlu': int(r.nlu),
                            'steps': int(len(r.t) - 1), 'yEnd': list(map(float, r.y[:, -1])), 'medianMs': times[len(times) // 2],
                            'minMs': times[0], 'maxMs': times[-1], 'reps': reps, 'success': bool(r.success)})
print(json.dumps(out))
