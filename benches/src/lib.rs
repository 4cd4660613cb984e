//! popek's benchmarks: criterion micro-benchmarks (`benches/`) and the guest-workload harness
//! (`src/bin/workloads.rs`). This library holds what they share: realistic guest blocks from
//! the hot loops of real guest images ([`blocks`]), tiny loop guests for the dispatch
//! benchmark ([`dispatch`]), and the harness's measuring and reporting ([`workloads`]).
//! See `benches/README.md` for what each benchmark measures and how to read it.
//!
//! ```no_run
//! use benches::dispatch::{loop_vm, run_blocks, Loop};
//! use runtime::Engine;
//!
//! // Time a million trips around a linked two-instruction loop on the DBT.
//! let mut vm = loop_vm(Engine::Dbt, Loop::Direct);
//! let t = run_blocks(&mut vm, 1_000_000);
//! println!("{:.2} ns per block", t.as_nanos() as f64 / 1e6);
//! ```

pub mod blocks;
pub mod dispatch;
pub mod elf;
pub mod json;
pub mod workloads;
