//! Translation cost and code quality report (`cargo test -p translator --release --lib
//! jit::tests::perf -- --ignored --nocapture`).

use iced_x86::code_asm::*;

use super::{asm, Harness};
use crate::jit::{disassemble, JitConfig, OptLevel, Regalloc};

/// A typical integer loop body: loads, stores, ALU, compare and branch (24 instructions).
/// With `self_loop` the branch goes back to the block's start; otherwise it goes forward.
fn realistic_block(self_loop: bool) -> Vec<u8> {
    asm(|a| {
        let mut top = a.create_label();
        if self_loop {
            a.set_label(&mut top)?;
        }
        a.mov(rax, qword_ptr(rdi + rcx * 8))?;
        a.add(rax, rdx)?;
        a.mov(qword_ptr(rsi + rcx * 8), rax)?;
        a.lea(rdx, qword_ptr(rax + rdx * 2))?;
        a.xor(r8d, r8d)?;
        a.cmp(rax, r9)?;
        a.cmovl(r8, rax)?;
        a.imul_2(r10, rax)?;
        a.shr(r10, 3)?;
        a.and(r11, r10)?;
        a.or(r12, r11)?;
        a.sub(r13, 1)?;
        a.inc(rcx)?;
        a.mov(ebx, ecx)?;
        a.test(ebx, 7)?;
        a.movzx(eax, byte_ptr(rdi + rcx))?;
        a.add(r14, rax)?;
        a.push(rbx)?;
        a.pop(rbx)?;
        a.add(dword_ptr(rsi + 16), eax)?;
        a.sete(al)?;
        a.neg(r11)?;
        a.cmp(rcx, r15)?;
        a.jb(top)?;
        if !self_loop {
            a.set_label(&mut top)?;
            a.nop()?;
        }
        Ok(())
    })
}

fn realistic() -> Vec<u8> {
    realistic_block(true)
}

/// A tight loop: `sum += a[i]; i++; if i < n goto top`.
fn simple_loop() -> Vec<u8> {
    asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.add(rax, qword_ptr(rdi + rcx * 8))?;
        a.inc(rcx)?;
        a.cmp(rcx, rdx)?;
        a.jb(top)
    })
}

/// CPU time of the calling thread (immune to other processes on a loaded machine).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on
    // Linux and only writes through the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
#[ignore = "report: run with --ignored --nocapture (preferably --release)"]
fn translation_cost_report() {
    for (name, config) in [
        ("default (speed, backtracking)", JitConfig::default()),
        (
            "fast (no opt, single pass)",
            JitConfig {
                opt_level: OptLevel::None,
                regalloc: Regalloc::SinglePass,
                ..JitConfig::default()
            },
        ),
        (
            "no opt, backtracking",
            JitConfig {
                opt_level: OptLevel::None,
                ..JitConfig::default()
            },
        ),
        (
            "speed, single pass",
            JitConfig {
                regalloc: Regalloc::SinglePass,
                ..JitConfig::default()
            },
        ),
    ] {
        println!("== {name}");
        cost(config);
    }
    let mut h = Harness::new();
    h.m.linking = true;
    let code = simple_loop();
    h.load(0x3000, &code);
    println!("\nsimple loop:");
    print_translation(&mut h, 0x3000);
}

/// Translate the block at `pc` and print its size, CLIF and host code.
fn print_translation(h: &mut Harness, pc: u64) {
    let block = h.decode(pc, 64);
    let c = h
        .jit
        .translate(&block, h.mode, &mut *h.m)
        .expect("translate");
    println!(
        "{} guest instructions, {} IR instructions, {} bytes\n{}",
        c.guest_insns,
        c.ir_insts,
        c.code.len(),
        h.jit.last_clif()
    );
    println!("{}", disassemble(&c.code, 0));
}

fn cost(config: JitConfig) {
    for self_loop in [true, false] {
        cost_of(config, self_loop);
    }
}

fn cost_of(config: JitConfig, self_loop: bool) {
    let mut h = Harness::with_config(config);
    let code = realistic_block(self_loop);
    h.load(0x1000, &code);
    let block = h.decode(0x1000, 64);
    let n = block.insns.len();
    let (mut tr, mut co, mut size, mut ir) = (Vec::new(), Vec::new(), 0, 0);
    let mut cpu = Vec::new();
    for _ in 0..300 {
        let t0 = thread_cpu_ns();
        let c = h
            .jit
            .translate(&block, h.mode, &mut *h.m)
            .expect("translate");
        cpu.push(thread_cpu_ns() - t0);
        tr.push(c.time_translate_ns);
        co.push(c.time_compile_ns);
        size = c.code.len();
        ir = c.ir_insts;
        assert_eq!(c.guest_insns as usize, n, "every instruction translated");
    }
    let (t, c) = (median(&mut tr), median(&mut co));
    let kind = if self_loop { "loop" } else { "straight" };
    println!("realistic {kind} block: {n} guest instructions, {ir} IR instructions, {size} bytes");
    println!(
        "  per guest instruction: IR build {:.2} us, Cranelift {:.2} us, total {:.2} us, {:.1} bytes",
        t as f64 / 1000.0 / n as f64,
        c as f64 / 1000.0 / n as f64,
        (t + c) as f64 / 1000.0 / n as f64,
        size as f64 / n as f64
    );
    println!(
        "  thread CPU time per guest instruction (median): {:.2} us",
        median(&mut cpu) as f64 / 1000.0 / n as f64
    );
}

#[test]
fn realistic_block_translates_completely() {
    let mut h = Harness::new();
    let code = realistic();
    h.load(0x1000, &code);
    let block = h.decode(0x1000, 64);
    let c = h
        .jit
        .translate(&block, h.mode, &mut *h.m)
        .expect("translate");
    assert!(c.guest_insns as usize <= block.insns.len());
    assert!(!c.code.is_empty());
}

#[test]
#[ignore = "report: dumps the CLIF of the realistic block"]
fn realistic_clif() {
    let mut h = Harness::new();
    let code = realistic_block(std::env::var("POPEK_SELF_LOOP").is_ok());
    h.load(0x1000, &code);
    let block = h.decode(0x1000, 64);
    let c = h
        .jit
        .translate(&block, h.mode, &mut *h.m)
        .expect("translate");
    println!("{}", h.jit.last_clif());
    println!("{}", disassemble(&c.code, 0));
}

#[test]
#[ignore = "debug: pre-optimization CLIF of the simple loop"]
fn simple_loop_raw_clif() {
    let mut h = Harness::new();
    let code = simple_loop();
    h.load(0x3000, &code);
    let block = h.decode(0x3000, 64);
    let mode = h.mode;
    let shape = crate::jit::Shape {
        pc: block.pc,
        preload: block.gpr_mask(),
        reload: !crate::jit::written_gprs(&block),
        trap_hypercalls: false,
        count_tlb_hits: false,
        carry: None,
        carry_flags: false,
        srclocs: false,
        mode_key: mode.key(),
    };
    let mut links = std::collections::HashMap::new();
    let preload = shape.preload;
    h.jit
        .build_block(shape, &[], &mut *h.m, &mut links, |e| {
            crate::semantics::translate_block(
                e,
                &block,
                mode,
                preload,
                crate::flags::Vendor::host(),
            )
        })
        .expect("build");
    println!("{}", h.jit.ctx.func.display());
}

/// Execution speed of generated code: a self-loop, and two linked blocks in a cycle.
#[test]
#[ignore = "report: run with --release --ignored --nocapture"]
fn execution_speed_report() {
    use crate::state::reg;
    let mut h = Harness::new();
    h.m.linking = true;
    // Self-loop: sum += a[i]; i++; i < n.
    h.load(0x3000, &simple_loop());
    let b = h.decode(0x3000, 64);
    let host = h.install(&b).expect("translate");
    let n = 100_000u64;
    let rounds = 100;
    let t0 = thread_cpu_ns();
    for _ in 0..rounds {
        h.cpu.gpr[reg::RDI] = 0x1_0000;
        h.cpu.gpr[reg::RCX] = 0;
        h.cpu.gpr[reg::RDX] = n;
        assert_eq!(h.enter(host), crate::state::ExitReason::Jump as u64);
        assert_eq!(h.cpu.gpr[reg::RCX], n);
    }
    let ns = (thread_cpu_ns() - t0) as f64;
    println!(
        "self-loop: {:.2} ns per iteration (4 guest instructions)",
        ns / (n * rounds) as f64
    );
    let n = 10_000_000u64;
    raw_tail_calls(n);
    for first_insn in ["add rax, 1", "inc rax"] {
        linked_pair(first_insn, n);
    }
    // Clock calibration: a dependent chain of 4 adds per iteration (about 4 cycles).
    let t0 = thread_cpu_ns();
    let mut x = 0u64;
    for i in 0..n {
        x = std::hint::black_box(x.wrapping_add(i).wrapping_add(3).wrapping_add(x >> 3) ^ i);
    }
    let ns = (thread_cpu_ns() - t0) as f64;
    println!(
        "native calibration loop: {:.2} ns per iteration ({x})",
        ns / n as f64
    );
}

/// Two linked blocks, `first_insn` | `cmp rax, rcx ; jne` (a cycle through link slots).
fn linked_pair(first_insn: &str, n: u64) {
    use crate::state::reg;
    let code = asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        if first_insn == "inc rax" {
            a.inc(rax)?;
        } else {
            a.add(rax, 1)?;
        }
        a.cmp(rax, rcx)?;
        a.jne(top)?;
        a.hlt()
    });
    let mut h = Harness::new();
    h.m.linking = true;
    h.m.log = false;
    h.load(0x1000, &code);
    let first = h.decode(0x1000, 1);
    let second = h.decode(first.next_pc(), 64);
    let a = h.install(&first).expect("translate");
    let b = h.install(&second).expect("translate");
    h.m.slots[0] = b as u64;
    h.m.slots[1] = a as u64;
    h.cpu.gpr[reg::RCX] = n;
    let t0 = thread_cpu_ns();
    h.enter(a);
    assert_eq!(h.cpu.gpr[0], n);
    let ns = (thread_cpu_ns() - t0) as f64;
    println!(
        "linked pair ({first_insn} | cmp; jne): {:.2} ns per block transition",
        ns / (2 * n) as f64
    );
    if std::env::var("POPEK_DISASM").is_ok() {
        let c = h
            .jit
            .translate(&first, h.mode, &mut *h.m)
            .expect("translate");
        println!("{}", disassemble(&c.code, 0));
    }
}

/// Two raw functions (no guest semantics) tail-calling each other through link slots.
fn raw_tail_calls(n: u64) {
    use crate::emit::{Emitter, Exit, ValueOps};
    use crate::ir::{BinOp, Cmp, Ty};
    use crate::state::{off_gpr, ExitReason};
    let mut h = Harness::new();
    h.m.linking = true;
    let mut hosts = Vec::new();
    for (pc, other) in [(0x1000u64, 0x2000u64), (0x2000, 0x1000)] {
        let host = h
            .install_raw(pc, |e| {
                let v = e.load_state(Ty::I64, off_gpr(0));
                let one = e.iconst(Ty::I64, 1);
                let v = e.binop(BinOp::Add, v, one);
                e.store_state(off_gpr(0), v);
                let lim = e.load_state(Ty::I64, off_gpr(1));
                let done = e.icmp(Cmp::Uge, v, lim);
                let (l1, l2) = (e.new_label(), e.new_label());
                e.branch(done, l1, l2);
                e.bind(l1);
                e.exit(Exit::Return(ExitReason::Stop));
                e.bind(l2);
                let t = e.iconst(Ty::I64, other);
                e.exit(Exit::Jump(t));
            })
            .expect("compile");
        hosts.push(host);
    }
    h.m.slots[0] = hosts[1] as u64;
    h.m.slots[1] = hosts[0] as u64;
    h.cpu.gpr[1] = n;
    let t0 = thread_cpu_ns();
    assert_eq!(h.enter(hosts[0]), ExitReason::Stop as u64);
    let ns = (thread_cpu_ns() - t0) as f64;
    println!("raw tail-call pair: {:.2} ns per transition", ns / n as f64);
}

#[test]
#[ignore = "prints the host code of an SSE loop, for reading"]
fn dump_saxpy_loop() {
    use iced_x86::code_asm::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
    let code = super::asm(|a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.movups(xmm1, xmmword_ptr(rsi + rax))?;
        a.movups(xmm0, xmmword_ptr(rdi + rax))?;
        a.mulps(xmm0, xmm2)?;
        a.addps(xmm0, xmm1)?;
        a.movups(xmmword_ptr(rsi + rax), xmm0)?;
        a.add(rax, 16)?;
        a.cmp(rax, rdx)?;
        a.jne(top)
    });
    let mut h = super::Harness::new();
    h.load(0x1000, &code);
    let block = h.decode(0x1000, 64);
    let c = h
        .jit
        .translate(&block, h.mode, &mut *h.m)
        .expect("translate");
    let mut d = Decoder::with_ip(64, &c.code, 0, DecoderOptions::NONE);
    let mut f = GasFormatter::new();
    let mut out = String::new();
    for insn in &mut d {
        let mut s = String::new();
        f.format(&insn, &mut s);
        out.push_str(&format!("{:4x}: {s}\n", insn.ip()));
    }
    println!("{out}");
}

/// The optimized CLIF and host code of one guest block given as hex bytes in `POPEK_DUMP_HEX`
/// (spaces allowed; e.g. a hot loop cut out of a guest ELF with objdump), at the guest
/// address in `POPEK_DUMP_PC` (hex, default 1000; a jump back to it makes a self-loop): to
/// compare what the translator emits per guest instruction with the guest's own code.
#[test]
#[ignore = "report: POPEK_DUMP_HEX=<bytes> cargo test --release -p translator dump_block -- --ignored --nocapture"]
fn dump_block() {
    let Ok(hex) = std::env::var("POPEK_DUMP_HEX") else {
        println!("set POPEK_DUMP_HEX to the block's bytes in hex");
        return;
    };
    let hex: String = hex.chars().filter(char::is_ascii_hexdigit).collect();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex byte"))
        .collect();
    let pc = std::env::var("POPEK_DUMP_PC")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x1000);
    if pc as usize + bytes.len() > super::RAM_SIZE {
        println!(
            "POPEK_DUMP_PC must leave the bytes inside the test RAM ({:#x} bytes)",
            super::RAM_SIZE
        );
        return;
    }
    // `POPEK_DUMP_TIER=quick`: as the runtime's quick tier compiles.
    let mut h = if std::env::var("POPEK_DUMP_TIER").is_ok_and(|t| t == "quick") {
        Harness::with_config(JitConfig {
            opt_level: OptLevel::None,
            regalloc: Regalloc::SinglePass,
            ..JitConfig::default()
        })
    } else {
        Harness::new()
    };
    // As the runtime translates: helpers through a register-preserving trampoline.
    h.m.dump_trampoline = Some(0x7000_0000);
    h.load(pc, &bytes);
    print_translation(&mut h, pc);
}
