//! Times one pass of the two hot kernels the way an engine runs them: two cached partitions
//! of 1M rows × 16 `f64` features, both kernels called over them through
//! [`run_on_partitions`] on the global rayon pool.
//!
//! ```text
//! cargo run --release -p kiln-ml --example kernel_speed
//! ```
//!
//! Prints the median (and fastest) of ten passes, after one warm-up pass, for the k-means
//! Lloyd assignment (k = 8) on its own; the first pass of a fit with distance bounds, which
//! searches every row and writes its bounds, once into bounds storage an earlier fit left and
//! once into new memory (as the first fit on a cached dataset does, paying the page faults);
//! two kinds of k-means pass in the steady state of a fit (each from the centres the previous
//! one computed, with the bounds that let it skip most of the nearest-centre search): one that
//! still reads every row, and the steady-state step a fit runs, which reads only the bounds
//! and the rows they cannot settle; and the binary logistic loss-and-gradient, next to the
//! memory-bandwidth floor (a plain sum over the same bytes), on this process's code path
//! ([`kiln_ml::simd::code_path`]). The example then runs itself again with `KILN_SIMD=off`
//! for the portable path's figures (unless `KILN_SIMD` is already set).
//!
//! They are timed in turn, round after round, and each pass is also given as a multiple
//! of the floor timed in the same round, so that a shared machine's changing load affects all
//! alike. On Linux the CPU time of the process's threads is printed as well: it does not grow
//! while other processes use the cores (it still does when they compete for memory).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use kiln_ml::cluster::kmeans::{
    BoundsHint, BoundsSlot, CenterSet, KMeansKernel, KMeansPartial, LloydRound,
};
use kiln_ml::linear::{LinearKernel, Loss};
use kiln_ml::simd::code_path;
use kiln_ml::step::run_on_partitions;
use kiln_ml::{CachedPartition, DenseMatrix, Features, Kernel, Partial};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

const ROWS_PER_PARTITION: usize = 1_000_000;
const PARTITIONS: u32 = 2;
const DIM: usize = 16;
const K: usize = 8;
const RUNS: usize = 10;

/// Eight blobs in 16 dimensions; the label follows a logistic model of the features.
fn partition(index: u32, blobs: &[Vec<f64>], w: &[f64]) -> CachedPartition {
    let mut rng = StdRng::seed_from_u64(1000 + u64::from(index));
    let n = ROWS_PER_PARTITION;
    let mut data = vec![0.0; n * DIM];
    let mut label = vec![0.0; n];
    let mut row = [0.0; DIM];
    for i in 0..n {
        let blob = &blobs[rng.random_range(0..blobs.len())];
        for (j, v) in row.iter_mut().enumerate() {
            *v = blob[j] + rng.random_range(-1.0..1.0);
            data[j * n + i] = *v;
        }
        let m: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
        label[i] = f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-m).exp()));
    }
    let x = DenseMatrix::from_column_major(n, DIM, data).unwrap();
    CachedPartition::new(index, Features::F64(x), Some(label)).unwrap()
}

/// Milliseconds per call of each of `bodies`, called round-robin [`RUNS`] times after one
/// warm-up round, so that all see the same share of a shared machine's load: wall-clock time,
/// and the CPU time of all the process's threads where Linux reports it.
fn time_ms(bodies: &mut [&mut dyn FnMut()]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut wall = vec![Vec::with_capacity(RUNS); bodies.len()];
    let mut cpu = vec![Vec::with_capacity(RUNS); bodies.len()];
    for round in 0..=RUNS {
        for ((body, w), c) in bodies.iter_mut().zip(wall.iter_mut()).zip(cpu.iter_mut()) {
            let (start, cpu_start) = (Instant::now(), cpu_ms());
            body();
            if round > 0 {
                w.push(start.elapsed().as_secs_f64() * 1e3);
                if let (Some(a), Some(b)) = (cpu_start, cpu_ms()) {
                    c.push(b - a);
                }
            }
        }
    }
    (wall, cpu)
}

/// CPU time used so far by all the threads of this process, in milliseconds
/// (`/proc/self/task/*/schedstat`, Linux only). Unlike wall-clock time it does not grow when
/// other processes take turns on the cores.
fn cpu_ms() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e6)
}

/// Lloyd passes as the trainer runs them: [`KMeansKernel::Lloyd`] with the centres' moves,
/// the centres updated from each pass's sums. With `steady`, each pass after the first carries
/// the passes since the first (a steady-state step, which reads only the rows its bounds
/// cannot settle); without, every pass reads every row.
struct LloydFit {
    centers: CenterSet,
    hint: BoundsHint,
    steady: bool,
    history: Vec<LloydRound>,
}

impl LloydFit {
    fn new(centers: &[Vec<f64>], steady: bool) -> Self {
        Self {
            centers: CenterSet::from_rows(centers).unwrap(),
            hint: BoundsHint::new(1),
            steady,
            history: Vec::new(),
        }
    }

    fn pass(&mut self, parts: &[&CachedPartition]) {
        let round = LloydRound {
            centers: self.centers.clone(),
            hint: self.hint.clone(),
        };
        // As the trainer: at most 32 rounds in a pass, its own included.
        if !self.steady || self.history.len() >= 31 {
            self.history.clear();
        }
        let kernel = Kernel::KMeans(KMeansKernel::Lloyd {
            centers: round.centers.clone(),
            hint: round.hint.clone(),
            history: self.history.clone(),
        });
        self.history.push(round);
        let partials = run_on_partitions(&kernel, parts).unwrap();
        let Partial::KMeans(KMeansPartial::Assign(p)) = Partial::merge_ordered(partials).unwrap()
        else {
            panic!("not an assign partial");
        };
        let moves: Vec<f64> = p
            .move_centres(&mut self.centers.values)
            .iter()
            .map(|s| s.sqrt())
            .collect();
        self.hint.advance(&moves);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
}

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    let blobs: Vec<Vec<f64>> = (0..K)
        .map(|_| (0..DIM).map(|_| rng.random_range(-4.0..4.0)).collect())
        .collect();
    let w: Vec<f64> = (0..DIM).map(|_| rng.random_range(-0.3..0.3)).collect();
    let parts: Vec<CachedPartition> = (0..PARTITIONS)
        .into_par_iter()
        .map(|p| partition(p, &blobs, &w))
        .collect();
    let refs: Vec<&CachedPartition> = parts.iter().collect();
    let bytes: usize = parts.iter().map(|p| p.features().size_bytes()).sum();

    // Initial centres near, not on, the blobs.
    let centers: Vec<Vec<f64>> = blobs
        .iter()
        .map(|b| b.iter().map(|v| v + rng.random_range(-0.5..0.5)).collect())
        .collect();
    let assign = Kernel::KMeans(KMeansKernel::Assign(
        CenterSet::from_rows(&centers).unwrap(),
    ));
    let logistic = Kernel::Linear(LinearKernel::LossGradient {
        loss: Loss::Logistic,
        coefficients: w.iter().map(|v| v * 0.9).collect(),
        intercepts: vec![0.1],
        scale: None,
        center: None,
        sample: None,
    });

    // The floor: the same bytes summed (eight independent sums, so that the adds keep up
    // with memory), blocks in parallel.
    let mut floor = || {
        let s: f64 = refs
            .par_iter()
            .map(|p| match p.features() {
                Features::F64(m) => m
                    .as_slice()
                    .par_chunks(1 << 16)
                    .map(|c| {
                        let mut acc = [0.0; 8];
                        for x in c.chunks_exact(8) {
                            acc.iter_mut().zip(x).for_each(|(a, v)| *a += v);
                        }
                        acc.iter().sum::<f64>()
                    })
                    .sum::<f64>(),
                Features::F32(_) => 0.0,
            })
            .sum();
        std::hint::black_box(s);
    };
    let run = |kernel: &Kernel| {
        std::hint::black_box(run_on_partitions(kernel, &refs).unwrap());
    };
    // Lloyd passes of one fit, each from the centres the previous one computed, keeping
    // distance bounds between passes as a fit does (a few passes first, so that the timed
    // ones are the steady state of a fit): passes that read every row, and steady-state
    // steps on copies of the partitions (each copy keeps its own bounds).
    let copies: Vec<CachedPartition> = parts.clone();
    let copy_refs: Vec<&CachedPartition> = copies.iter().collect();
    let mut full = LloydFit::new(&centers, false);
    let mut steady = LloydFit::new(&centers, true);
    for _ in 0..3 {
        full.pass(&refs);
        steady.pass(&copy_refs);
    }
    // The first pass of a fit with bounds: it searches every row and writes every row's
    // bounds (on copies of the partitions, into the storage the previous fit left, so
    // without first-touch page faults).
    let first_copies: Vec<CachedPartition> = parts.clone();
    let first_refs: Vec<&CachedPartition> = first_copies.iter().collect();
    let mut fits = 100;
    let mut first = || {
        fits += 1;
        let mut fit = LloydFit::new(&centers, false);
        fit.hint.fit = fits;
        fit.pass(&first_refs);
    };
    // The same first pass on partitions that never kept bounds: its bounds are new memory,
    // so it pays their first-touch page faults, as the first fit on a cached dataset does.
    // (The copies are made here, and dropped after the timing.)
    let mut fresh_sets: Vec<Vec<CachedPartition>> = (0..=RUNS).map(|_| parts.clone()).collect();
    let mut spent: Vec<Vec<CachedPartition>> = Vec::new();
    let mut fresh = || {
        let set = fresh_sets.pop().unwrap();
        let set_refs: Vec<&CachedPartition> = set.iter().collect();
        let mut fit = LloydFit::new(&centers, false);
        fit.hint.fit = 10_000 + fresh_sets.len() as u64;
        fit.pass(&set_refs);
        spent.push(set);
    };
    let (times, cpu) = time_ms(&mut [
        &mut floor,
        &mut || run(&assign),
        &mut first,
        &mut fresh,
        &mut || full.pass(&refs),
        &mut || steady.pass(&copy_refs),
        &mut || run(&logistic),
    ]);
    let threads = rayon::current_num_threads();

    println!(
        "{PARTITIONS} x {ROWS_PER_PARTITION} rows x {DIM} f64 ({} MB), {threads} rayon threads, \
         code path {}",
        bytes >> 20,
        code_path().name()
    );
    println!(
        "                          wall ms: median    best  x floor | cpu ms/thread: median  x floor"
    );
    let names = [
        "memory floor (sum)".to_string(),
        format!("k-means assign (k = {K})"),
        "k-means fit, first bounds".to_string(),
        "k-means fit, first, new".to_string(),
        "k-means fit, full pass".to_string(),
        "k-means fit, steady step".to_string(),
        "logistic loss+gradient".to_string(),
    ];
    for ((name, t), c) in names.iter().zip(&times).zip(&cpu) {
        // Ratios per round (against the floor timed just before), then their median.
        let ratio = |v: &[f64], floor: &[f64]| {
            median(&v.iter().zip(floor).map(|(a, f)| a / f).collect::<Vec<_>>())
        };
        print!(
            "{name:<25} {:16.2} {:7.2} {:7.2}x |",
            median(t),
            t.iter().copied().fold(f64::INFINITY, f64::min),
            ratio(t, &times[0])
        );
        if c.len() == t.len() {
            print!(
                " {:20.2} {:7.2}x",
                median(c) / threads as f64,
                ratio(c, &cpu[0])
            );
        }
        println!();
    }
    println!(
        "(floor: {:.1} GB/s at the median wall time; the logistic pass also reads a 16 MB label;",
        bytes as f64 / median(&times[0]) / 1e6
    );
    let (searched, rows) = copies
        .iter()
        .filter_map(|p| BoundsSlot::of(p).last_pass_searched())
        .fold((0, 0), |(s, r), (a, b)| (s + a, r + b));
    println!(
        " a pass of a fit keeps 2.5 bytes of bounds a row; the full pass reads every row, the \
         steady step its bounds and the {searched} of {rows} rows they could not settle)"
    );

    if std::env::var_os("KILN_SIMD").is_none() {
        println!();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env("KILN_SIMD", "off")
            .status()
            .unwrap();
        assert!(status.success());
    }
}
