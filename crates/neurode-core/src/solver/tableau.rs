//! Butcher tableaus. A solver method is data: stages, weights, error weights, interpolant.
//! Coefficients are the published ones (Dormand–Prince 1980, Shampine 1986 dense output,
//! Bogacki–Shampine 1989, Tsitouras 2011, Prince–Dormand 8(7) 1981).

/// How a step's dense output is formed.
#[derive(Clone, Copy, Debug)]
pub enum Interp {
    /// Cubic Hermite through (y0, f0, y1, f1).
    Hermite,
    /// Quartic through (y0, f0, y1, f1, y_mid) with y_mid = y0 + h·Σ mid_j k_j.
    /// For dopri5 this is Shampine's 4th-order continuous extension.
    Quartic(&'static [f64]),
    /// Tsitouras' own 4th-order interpolant: y(θ) = y0 + h·Σ b_j(θ) k_j.
    Tsit5,
    /// The continuous extension of Prince–Dormand 8(7), of the same form.
    Dopri8,
}

#[derive(Debug)]
pub struct Tableau {
    pub name: &'static str,
    /// Nodes c_i of stages 0..s (c_0 = 0).
    pub c: &'static [f64],
    /// Row i (i = 1..s) holds a_{i,0..i}; row 0 is empty.
    pub a: &'static [&'static [f64]],
    /// Solution weights over all s stages.
    pub b: &'static [f64],
    /// Error weights (b − b̂) over all s stages; empty for fixed-step methods.
    pub e: &'static [f64],
    /// Order used by the step-size controller (exponent 1/order) and the initial-step heuristic.
    pub order: u32,
    /// Last stage is f(t1, y1) with a_last = b (First Same As Last).
    pub fsal: bool,
    pub interp: Interp,
}

impl Tableau {
    pub fn stages(&self) -> usize {
        self.c.len()
    }
    pub fn adaptive(&self) -> bool {
        !self.e.is_empty()
    }
    /// Whether stage i's value reaches the step's solution or its dense output (otherwise it
    /// feeds only later stages and the error estimate: dopri5's second stage).
    pub fn stage_in_output(&self, i: usize) -> bool {
        let last = i + 1 == self.stages();
        let interp = match self.interp {
            Interp::Hermite => i == 0 || (self.fsal && last),
            Interp::Quartic(mid) => i == 0 || last || mid[i] != 0.0,
            Interp::Tsit5 | Interp::Dopri8 => true,
        };
        self.b[i] != 0.0 || (self.fsal && last) || interp
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Euler,
    Midpoint,
    Heun,
    Rk4,
    Bosh3,
    Dopri5,
    Tsit5,
    Dopri8,
    /// Kværnø's L-stable ESDIRK 5(4) with Newton iterations (solver/stiff.rs).
    Kvaerno5,
    /// Fixed-step Adams–Bashforth (solver/adams.rs), as torchdiffeq's explicit_adams.
    ExplicitAdams,
    /// Adams–Bashforth–Moulton predictor–corrector, as torchdiffeq's implicit_adams.
    ImplicitAdams,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Euler,
        Method::Midpoint,
        Method::Heun,
        Method::Rk4,
        Method::Bosh3,
        Method::Dopri5,
        Method::Tsit5,
        Method::Dopri8,
    ];
    /// Methods beyond the explicit Runge–Kutta tableaus (ABI indices 8, 9, 10).
    pub const EXTRA: [Method; 3] = [Method::Kvaerno5, Method::ExplicitAdams, Method::ImplicitAdams];
    /// Whether `solve` runs it through the explicit Runge–Kutta step loop (not one of `EXTRA`).
    pub fn explicit_rk(self) -> bool {
        !Method::EXTRA.contains(&self)
    }
    /// The ABI encodes methods as their index in `ALL`, then `EXTRA`.
    pub fn from_index(i: u32) -> Option<Method> {
        let i = i as usize;
        Method::ALL.get(i).or_else(|| Method::EXTRA.get(i.wrapping_sub(Method::ALL.len()))).copied()
    }
    pub fn tableau(self) -> &'static Tableau {
        match self {
            Method::Euler => &EULER,
            Method::Midpoint => &MIDPOINT,
            Method::Heun => &HEUN,
            Method::Rk4 => &RK4,
            Method::Bosh3 => &BOSH3,
            Method::Dopri5 => &DOPRI5,
            Method::Tsit5 => &TSIT5,
            Method::Dopri8 => &DOPRI8,
            Method::Kvaerno5 => &KVAERNO5,
            // Adams starts with RK4 steps and interpolates with the cubic Hermite like it.
            Method::ExplicitAdams | Method::ImplicitAdams => &RK4,
        }
    }
}

/// Diagonal γ of Kvaerno5 (not part of `a`, which holds the strictly lower triangle).
pub const KVAERNO5_GAMMA: f64 = 0.26;
const KV_A61: f64 = 0.13855640231268224;
const KV_A63: f64 = -0.04245337201752043;
const KV_A64: f64 = 0.02446657898003141;
const KV_A65: f64 = 0.61943039072480676;
const KV_B: [f64; 7] = [0.13659751177640291, 0.0, -0.05496908796538376, -0.04118626728321046, 0.62993304899016403, 0.06962479448202728, KVAERNO5_GAMMA];

/// Kværnø (2004) ESDIRK 5(4), 7 stages, stiffly accurate (b = last row), L-stable. The first
/// stage is explicit; stage i ≥ 1 solves Z_i = y0 + h Σ_{j<i} a_ij k_j + h γ f(Z_i). The
/// embedded 4th-order solution is the sixth stage. Dense output: cubic Hermite.
pub static KVAERNO5: Tableau = Tableau {
    name: "kvaerno5",
    c: &[
        0.0,
        2.0 * KVAERNO5_GAMMA,
        0.13 + 0.84033320996790809 + KVAERNO5_GAMMA,
        0.22371961478320505 + 0.47675532319799699 - 0.06470895363112615 + KVAERNO5_GAMMA,
        0.16648564323248321 + 0.10450018841591720 + 0.03631482272098715 - 0.13090704451073998 + KVAERNO5_GAMMA,
        1.0,
        1.0,
    ],
    a: &[
        &[],
        &[KVAERNO5_GAMMA],
        &[0.13, 0.84033320996790809],
        &[0.22371961478320505, 0.47675532319799699, -0.06470895363112615],
        &[0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998],
        &[KV_A61, 0.0, KV_A63, KV_A64, KV_A65],
        &[KV_B[0], KV_B[1], KV_B[2], KV_B[3], KV_B[4], KV_B[5]],
    ],
    b: &KV_B,
    e: &[KV_B[0] - KV_A61, 0.0, KV_B[2] - KV_A63, KV_B[3] - KV_A64, KV_B[4] - KV_A65, KV_B[5] - KVAERNO5_GAMMA, KVAERNO5_GAMMA],
    order: 5,
    fsal: false,
    interp: Interp::Hermite,
};

pub static EULER: Tableau = Tableau {
    name: "euler",
    c: &[0.0],
    a: &[&[]],
    b: &[1.0],
    e: &[],
    order: 1,
    fsal: false,
    interp: Interp::Hermite,
};

pub static MIDPOINT: Tableau = Tableau {
    name: "midpoint",
    c: &[0.0, 0.5],
    a: &[&[], &[0.5]],
    b: &[0.0, 1.0],
    e: &[],
    order: 2,
    fsal: false,
    interp: Interp::Hermite,
};

/// Heun's method (explicit trapezoidal rule).
pub static HEUN: Tableau = Tableau {
    name: "heun",
    c: &[0.0, 1.0],
    a: &[&[], &[1.0]],
    b: &[0.5, 0.5],
    e: &[],
    order: 2,
    fsal: false,
    interp: Interp::Hermite,
};

/// Kutta's 3/8 rule, the fourth-order method torchdiffeq calls `rk4`.
pub static RK4: Tableau = Tableau {
    name: "rk4",
    c: &[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0],
    a: &[&[], &[1.0 / 3.0], &[-1.0 / 3.0, 1.0], &[1.0, -1.0, 1.0]],
    b: &[1.0 / 8.0, 3.0 / 8.0, 3.0 / 8.0, 1.0 / 8.0],
    e: &[],
    order: 4,
    fsal: false,
    interp: Interp::Hermite,
};

pub static BOSH3: Tableau = Tableau {
    name: "bosh3",
    c: &[0.0, 0.5, 0.75, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.75], &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0]],
    b: &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
    e: &[2.0 / 9.0 - 7.0 / 24.0, 1.0 / 3.0 - 1.0 / 4.0, 4.0 / 9.0 - 1.0 / 3.0, -1.0 / 8.0],
    order: 3,
    fsal: true,
    interp: Interp::Hermite,
};

pub static DOPRI5: Tableau = Tableau {
    name: "dopri5",
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
        &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
        &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
    ],
    b: &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0],
    e: &[
        35.0 / 384.0 - 1951.0 / 21600.0,
        0.0,
        500.0 / 1113.0 - 22642.0 / 50085.0,
        125.0 / 192.0 - 451.0 / 720.0,
        -2187.0 / 6784.0 + 12231.0 / 42400.0,
        11.0 / 84.0 - 649.0 / 6300.0,
        -1.0 / 60.0,
    ],
    order: 5,
    fsal: true,
    interp: Interp::Quartic(&[
        6025192743.0 / 30085553152.0 / 2.0,
        0.0,
        51252292925.0 / 65400821598.0 / 2.0,
        -2691868925.0 / 45128329728.0 / 2.0,
        187940372067.0 / 1594534317056.0 / 2.0,
        -1776094331.0 / 19743644256.0 / 2.0,
        11237099.0 / 235043384.0 / 2.0,
    ]),
};

pub static TSIT5: Tableau = Tableau {
    name: "tsit5",
    c: &[0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
    a: &[
        &[],
        &[0.161],
        &[-0.008480655492356989, 0.335480655492357],
        &[2.8971530571054935, -6.359448489975075, 4.3622954328695815],
        &[5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
        &[5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
        &[0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774],
    ],
    b: &[0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774, 0.0],
    e: &[
        -0.001780011052225771443378550607539534775944678804333659557637450799792588061629796,
        -0.0008164344596567469032236360633546862401862537590159047610940604670770447527463931,
        0.007880878010261996010314727672526304238628733777103128603258129604952959142646516,
        -0.144711007173262907537165147972635116720922712343167677619514233896760819649515,
        0.5823571654525552250199376106520421794260781239567387797673045438803694038950012,
        -0.4580821059291869466616365188325542974428047279788398179474684434732070620889539,
        1.0 / 66.0,
    ],
    order: 5,
    fsal: true,
    interp: Interp::Tsit5,
};

/// Numbers the interpolant formulas are written over: f64 for values, `Dual` for θ-derivatives.
pub trait Num: Copy + core::ops::Add<Output = Self> + core::ops::Sub<Output = Self> + core::ops::Mul<Output = Self> {
    fn c(x: f64) -> Self;
}

impl Num for f64 {
    fn c(x: f64) -> Self {
        x
    }
}

/// v + d·ε with ε² = 0: evaluating a weight at Dual{θ, 1} gives its value and d/dθ.
#[derive(Clone, Copy, Debug)]
pub struct Dual {
    pub v: f64,
    pub d: f64,
}

impl core::ops::Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        Dual { v: self.v + o.v, d: self.d + o.d }
    }
}
impl core::ops::Sub for Dual {
    type Output = Dual;
    fn sub(self, o: Dual) -> Dual {
        Dual { v: self.v - o.v, d: self.d - o.d }
    }
}
impl core::ops::Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        Dual { v: self.v * o.v, d: self.d * o.v + self.v * o.d }
    }
}
impl Num for Dual {
    fn c(x: f64) -> Self {
        Dual { v: x, d: 0.0 }
    }
}

/// Tsitouras' interpolant weights b_j(θ), j = 0..6 (the free interpolant of Tsit5).
pub fn tsit5_weights<T: Num>(th: T, w: &mut [T]) {
    let c = T::c;
    let t2 = th * th;
    w[0] = c(-1.0530884977290216) * th * (th - c(1.329989018975412)) * (t2 - c(1.4364028541716351) * th + c(0.7139816917074209));
    w[1] = c(0.1017) * t2 * (t2 - c(2.1966568338249754) * th + c(1.2949852507374631));
    w[2] = c(2.490627285651252793) * t2 * (t2 - c(2.38535645472061657) * th + c(1.57803468208092486));
    w[3] = c(-16.54810288924490272) * (th - c(1.21712927295533244)) * (th - c(0.61620406037800089)) * t2;
    w[4] = c(47.37952196281928122) * (th - c(1.203071208372362603)) * (th - c(0.658047292653547382)) * t2;
    w[5] = c(-34.87065786149660974) * (th - c(1.2)) * (th - c(2.0 / 3.0)) * t2;
    w[6] = c(2.5) * (th - c(1.0)) * (th - c(0.6)) * t2;
}

/// Prince–Dormand 8(7) (13 stages + FSAL) with its continuous extension.
pub static DOPRI8: Tableau = Tableau {
    name: "dopri8",
    c: &[
        0.0,
        1.0 / 18.0,
        1.0 / 12.0,
        1.0 / 8.0,
        5.0 / 16.0,
        3.0 / 8.0,
        59.0 / 400.0,
        93.0 / 200.0,
        5490023248.0 / 9719169821.0,
        13.0 / 20.0,
        1201146811.0 / 1299019798.0,
        1.0,
        1.0,
        1.0,
    ],
    a: &[
        &[],
        &[1.0 / 18.0],
        &[1.0 / 48.0, 1.0 / 16.0],
        &[1.0 / 32.0, 0.0, 3.0 / 32.0],
        &[5.0 / 16.0, 0.0, -75.0 / 64.0, 75.0 / 64.0],
        &[3.0 / 80.0, 0.0, 0.0, 3.0 / 16.0, 3.0 / 20.0],
        &[29443841.0 / 614563906.0, 0.0, 0.0, 77736538.0 / 692538347.0, -28693883.0 / 1125000000.0, 23124283.0 / 1800000000.0],
        &[16016141.0 / 946692911.0, 0.0, 0.0, 61564180.0 / 158732637.0, 22789713.0 / 633445777.0, 545815736.0 / 2771057229.0, -180193667.0 / 1043307555.0],
        &[39632708.0 / 573591083.0, 0.0, 0.0, -433636366.0 / 683701615.0, -421739975.0 / 2616292301.0, 100302831.0 / 723423059.0, 790204164.0 / 839813087.0, 800635310.0 / 3783071287.0],
        &[246121993.0 / 1340847787.0, 0.0, 0.0, -37695042795.0 / 15268766246.0, -309121744.0 / 1061227803.0, -12992083.0 / 490766935.0, 6005943493.0 / 2108947869.0, 393006217.0 / 1396673457.0, 123872331.0 / 1001029789.0],
        &[-1028468189.0 / 846180014.0, 0.0, 0.0, 8478235783.0 / 508512852.0, 1311729495.0 / 1432422823.0, -10304129995.0 / 1701304382.0, -48777925059.0 / 3047939560.0, 15336726248.0 / 1032824649.0, -45442868181.0 / 3398467696.0, 3065993473.0 / 597172653.0],
        &[185892177.0 / 718116043.0, 0.0, 0.0, -3185094517.0 / 667107341.0, -477755414.0 / 1098053517.0, -703635378.0 / 230739211.0, 5731566787.0 / 1027545527.0, 5232866602.0 / 850066563.0, -4093664535.0 / 808688257.0, 3962137247.0 / 1805957418.0, 65686358.0 / 487910083.0],
        &[403863854.0 / 491063109.0, 0.0, 0.0, -5068492393.0 / 434740067.0, -411421997.0 / 543043805.0, 652783627.0 / 914296604.0, 11173962825.0 / 925320556.0, -13158990841.0 / 6184727034.0, 3936647629.0 / 1978049680.0, -160528059.0 / 685178525.0, 248638103.0 / 1413531060.0, 0.0],
        &[14005451.0 / 335480064.0, 0.0, 0.0, 0.0, 0.0, -59238493.0 / 1068277825.0, 181606767.0 / 758867731.0, 561292985.0 / 797845732.0, -1041891430.0 / 1371343529.0, 760417239.0 / 1151165299.0, 118820643.0 / 751138087.0, -528747749.0 / 2220607170.0, 1.0 / 4.0],
    ],
    b: &[14005451.0 / 335480064.0, 0.0, 0.0, 0.0, 0.0, -59238493.0 / 1068277825.0, 181606767.0 / 758867731.0, 561292985.0 / 797845732.0, -1041891430.0 / 1371343529.0, 760417239.0 / 1151165299.0, 118820643.0 / 751138087.0, -528747749.0 / 2220607170.0, 1.0 / 4.0, 0.0],
    e: &[
        14005451.0 / 335480064.0 - 13451932.0 / 455176623.0,
        0.0,
        0.0,
        0.0,
        0.0,
        -59238493.0 / 1068277825.0 + 808719846.0 / 976000145.0,
        181606767.0 / 758867731.0 - 1757004468.0 / 5645159321.0,
        561292985.0 / 797845732.0 - 656045339.0 / 265891186.0,
        -1041891430.0 / 1371343529.0 + 3867574721.0 / 1518517206.0,
        760417239.0 / 1151165299.0 - 465885868.0 / 322736535.0,
        118820643.0 / 751138087.0 - 53011238.0 / 667516719.0,
        -528747749.0 / 2220607170.0 - 2.0 / 45.0,
        1.0 / 4.0,
        0.0,
    ],
    order: 8,
    fsal: true,
    interp: Interp::Dopri8,
};

/// Coefficients of the dopri8 continuous extension: b_j(θ) = θ·(c1 θ + c2 θ² + … + c5 θ⁵), plus
/// θ for j = 0, so y(t0 + θh) = y0 + h·Σ b_j(θ) k_j (stages 1–4 have weight 0).
static DOPRI8_DENSE: [[f64; 5]; 14] = {
    let mut c = [[0.0; 5]; 14];
    c[0] = [-6.6910181737837595697, 19.9990069333683970610, -30.0610568289666450593, 22.1396504998094068976, -6.3448349392860401388];
    c[5] = [-7.6142658045872677172, 52.2273532792945524050, -121.4999627731334642623, 116.4422149550342161651, -39.6107919852202505218];
    c[6] = [10.7281392630428866124, -46.8919164181093621583, 83.1721004639847717481, -67.1451318825957197185, 20.3761213808791436958];
    c[7] = [0.5526637063753648783, -0.1890893225010595467, 9.5724507555993664382, -16.5672243527496524646, 7.3347098826795362023];
    c[8] = [4.2186562625665153803, -35.7075975946222072821, 87.8406057677205645007, -89.9916014847245016028, 32.8801774352459155182];
    c[9] = [-0.6627209125361597559, 6.2736448083240352160, -17.4152107770762969005, 22.6237489648532849093, -10.1588990526426760954];
    c[10] = [-1.2636789001135462218, 10.3160881272450748458, -28.5903289514790976966, 32.2362340167355370113, -12.5401268098782561200];
    c[11] = [5.4106037898590422230, -34.7650769866611817349, 81.6630950584341412934, -82.1020315488359848644, 29.5553001484516038033];
    c[12] = [-7.0321379067945741781, 47.7457971078225540396, -114.9375291377009418170, 116.2662185791119533462, -41.7923486424390588923];
    c[13] = [2.3537586759714983486, -19.0082099341608028453, 50.2558364226176017553, -53.9020777466385396792, 20.3006925822100825485];
    c
};

/// The dopri8 interpolant weights b_j(θ), j = 0..13.
pub fn dopri8_weights<T: Num>(th: T, w: &mut [T]) {
    for j in 0..14 {
        let q = &DOPRI8_DENSE[j];
        let p = th * (T::c(q[0]) + th * (T::c(q[1]) + th * (T::c(q[2]) + th * (T::c(q[3]) + th * T::c(q[4])))));
        w[j] = th * (p + T::c(if j == 0 { 1.0 } else { 0.0 }));
    }
}

/// The dense output of one step as a linear combination:
/// y(s0 + θh) = y0·y0 + y1·y1 + h·Σ_j k_j·k_j + h·f_end·f(s1, y1).
/// `f_end` is only used by Hermite interpolation of methods without FSAL.
#[derive(Clone, Debug)]
pub struct InterpWeights<T> {
    pub y0: T,
    pub y1: T,
    pub k: [T; 14],
    pub f_end: T,
}

/// Weights of the method's interpolant at θ (T = f64), or values and θ-derivatives (T = Dual).
pub fn interp_weights<T: Num>(tb: &Tableau, th: T) -> InterpWeights<T> {
    let c = T::c;
    let z = c(0.0);
    let mut w = InterpWeights { y0: z, y1: z, k: [z; 14], f_end: z };
    let s = tb.stages();
    let t2 = th * th;
    let t3 = t2 * th;
    let t4 = t3 * th;
    match tb.interp {
        Interp::Hermite => {
            w.y0 = c(2.0) * t3 - c(3.0) * t2 + c(1.0);
            w.y1 = c(3.0) * t2 - c(2.0) * t3;
            w.k[0] = t3 - c(2.0) * t2 + th;
            let f1 = t3 - t2;
            if tb.fsal {
                w.k[s - 1] = f1;
            } else {
                w.f_end = f1;
            }
        }
        Interp::Quartic(mid) => {
            // quartic through y0, y1, f0, f1 and y_mid = y0 + h·Σ mid_j k_j
            let ym = c(16.0) * t2 - c(32.0) * t3 + c(16.0) * t4;
            w.y0 = c(1.0) - c(11.0) * t2 + c(18.0) * t3 - c(8.0) * t4 + ym;
            w.y1 = c(14.0) * t3 - c(5.0) * t2 - c(8.0) * t4;
            for (j, &m) in mid.iter().enumerate() {
                w.k[j] = ym * c(m);
            }
            w.k[0] = w.k[0] + th - c(4.0) * t2 + c(5.0) * t3 - c(2.0) * t4;
            w.k[s - 1] = w.k[s - 1] + t2 - c(3.0) * t3 + c(2.0) * t4;
        }
        Interp::Tsit5 => {
            w.y0 = c(1.0);
            tsit5_weights(th, &mut w.k[..7]);
        }
        Interp::Dopri8 => {
            w.y0 = c(1.0);
            dopri8_weights(th, &mut w.k[..14]);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tableaus_are_consistent() {
        for m in Method::ALL {
            let tb = m.tableau();
            let s = tb.stages();
            assert_eq!(tb.a.len(), s, "{}", tb.name);
            assert_eq!(tb.b.len(), s, "{}", tb.name);
            for i in 0..s {
                assert_eq!(tb.a[i].len(), i, "{} row {}", tb.name, i);
                // row sums equal the node (consistency): c_i = Σ_j a_ij
                let sum: f64 = tb.a[i].iter().sum();
                assert!((sum - tb.c[i]).abs() < 1e-12, "{} row {}: {} vs {}", tb.name, i, sum, tb.c[i]);
            }
            let bsum: f64 = tb.b.iter().sum();
            assert!((bsum - 1.0).abs() < 1e-12, "{} weights sum {}", tb.name, bsum);
            if tb.adaptive() {
                assert_eq!(tb.e.len(), s);
                // embedded weights b̂ = b − e also sum to one
                let esum: f64 = tb.e.iter().sum();
                assert!(esum.abs() < 1e-12, "{} error weights sum {}", tb.name, esum);
            }
            if tb.fsal {
                assert_eq!(tb.a[s - 1], &tb.b[..s - 1], "{} FSAL row", tb.name);
                assert_eq!(tb.b[s - 1], 0.0);
            }
            if let Interp::Quartic(mid) = tb.interp {
                assert_eq!(mid.len(), s);
                let msum: f64 = mid.iter().sum();
                assert!((msum - 0.5).abs() < 1e-12, "{} mid weights sum {}", tb.name, msum);
            }
        }
        let mut w = [0.0; 7];
        tsit5_weights(1.0, &mut w[..]);
        for j in 0..7 {
            assert!((w[j] - TSIT5.b[j]).abs() < 1e-12, "tsit5 interpolant at θ=1, weight {}", j);
        }
        let mut w = [0.0; 14];
        dopri8_weights(1.0, &mut w[..]);
        for j in 0..14 {
            assert!((w[j] - DOPRI8.b[j]).abs() < 1e-9, "dopri8 interpolant at θ=1, weight {}: {} vs {}", j, w[j], DOPRI8.b[j]);
        }
    }

    /// Every interpolant starts at y0 and ends at y1 (to rounding), with the right slope at θ = 0.
    #[test]
    fn interpolants_match_step_ends() {
        for m in Method::ALL {
            let tb = m.tableau();
            let a = interp_weights(tb, 0.0);
            assert!((a.y0 - 1.0).abs() < 1e-12 && a.y1.abs() < 1e-12 && a.k.iter().all(|v| v.abs() < 1e-12), "{}", tb.name);
            let d = interp_weights(tb, Dual { v: 0.0, d: 1.0 });
            // y'(0)·h = h·f0: derivative weight 1 on k0 (and none elsewhere)
            assert!((d.k[0].d - 1.0).abs() < 1e-9 && d.y0.d.abs() < 1e-9 && d.y1.d.abs() < 1e-9, "{} slope at 0", tb.name);
            let b = interp_weights(tb, 1.0);
            // at θ = 1 the combination equals y1 = y0 + h Σ b_j k_j
            let y1_weight = b.y1;
            for j in 0..tb.stages() {
                let expect = tb.b[j] * (1.0 - y1_weight);
                assert!((b.k[j] - expect).abs() < 1e-9, "{} θ=1 weight {}: {} vs {}", tb.name, j, b.k[j], expect);
            }
            assert!((b.y0 + b.y1 - 1.0).abs() < 1e-12, "{}", tb.name);
        }
    }

    /// Order conditions up to order 4 for every method of order ≥ 4 (b·c^k = 1/(k+1), b·A·c = 1/6, ...).
    #[test]
    fn order_conditions() {
        for m in Method::ALL {
            let tb = m.tableau();
            let p = tb.order.min(4) as usize;
            let s = tb.stages();
            let bc = |k: i32| -> f64 { (0..s).map(|i| tb.b[i] * tb.c[i].powi(k)).sum() };
            for k in 0..p {
                assert!((bc(k as i32) - 1.0 / (k as f64 + 1.0)).abs() < 1e-10, "{} b·c^{}", tb.name, k);
            }
            if p >= 3 {
                let bac: f64 = (0..s).map(|i| tb.b[i] * (0..i).map(|j| tb.a[i][j] * tb.c[j]).sum::<f64>()).sum();
                assert!((bac - 1.0 / 6.0).abs() < 1e-10, "{} b·A·c", tb.name);
            }
        }
    }
}
