//! The cost of one guest block round trip, on two-instruction loop guests
//! ([`benches::dispatch`]): block to block through a linked direct jump, through an indirect
//! jump (the Lookup helper and the jump cache), and through the dispatcher (one `Vm::run`
//! per block: jump-cache lookup, entry trampoline, budget exit, exit handling). The
//! interpreter on the same loop is the reference. Times are per block (two guest
//! instructions).
//!
//! `cargo bench -p benches --bench dispatch`

use benches::dispatch::{loop_vm, run_blocks, run_dispatched, Loop};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runtime::Engine;

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(1));
    for kind in [Loop::Direct, Loop::Indirect] {
        let mut vm = loop_vm(Engine::Jit, kind);
        let name = match kind {
            Loop::Direct => "jit/direct_linked",
            Loop::Indirect => "jit/indirect_lookup",
        };
        g.bench_function(name, |b| b.iter_custom(|n| run_blocks(&mut vm, n)));
    }
    let mut vm = loop_vm(Engine::Jit, Loop::Direct);
    g.bench_function("jit/dispatcher_vm_run", |b| {
        b.iter_custom(|n| run_dispatched(&mut vm, n))
    });
    for kind in [Loop::Direct, Loop::Indirect] {
        let mut vm = loop_vm(Engine::Interp, kind);
        g.bench_function(format!("interp/{}", kind.name()), |b| {
            b.iter_custom(|n| run_blocks(&mut vm, n))
        });
    }
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
