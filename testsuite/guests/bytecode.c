/*
 * A small stack-machine interpreter, twice: a switch loop (jump table) and a
 * direct-threaded loop (computed goto), giving the translator dense indirect
 * jumps. Three bytecode programs -- iterative Fibonacci, recursive Fibonacci
 * through CALL/RET, and a mixed arithmetic loop -- run SCALE times on both
 * interpreters, which must agree with each other and with C.
 */
#include "rt.h"

enum op {
    OP_HALT,
    OP_PUSH,   /* imm: push sign-extended 32-bit immediate */
    OP_POP,
    OP_DUP,
    OP_SWAP,
    OP_OVER,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_AND,
    OP_XOR,
    OP_SHL,
    OP_SHR,
    OP_LT,     /* signed */
    OP_EQ,
    OP_JMP,    /* imm: absolute target */
    OP_JZ,     /* imm: absolute target, pops */
    OP_GLOAD,  /* imm: global index */
    OP_GSTORE, /* imm: global index, pops */
    OP_ARG,    /* imm: argument index in the current frame */
    OP_CALL,   /* imm target, imm nargs */
    OP_RET,    /* pops result, drops the frame's arguments, pushes result */
    OP_COUNT,
};

#define CODE_MAX 256
#define STACK_MAX 4096
#define FRAMES_MAX 1024
#define GLOBALS 8

struct program {
    i32 code[CODE_MAX];
    u32 len;
};

struct frame {
    u32 ret;
    u32 fp;
};

struct vm {
    i64 stack[STACK_MAX];
    struct frame frames[FRAMES_MAX];
    i64 globals[GLOBALS];
    u64 steps;
};

static struct vm vm;
static struct program fib_iter, fib_rec, mix_loop;

static u32 emit(struct program *p, i32 w)
{
    p->code[p->len] = w;
    return p->len++;
}

static u32 emit1(struct program *p, enum op op, i32 imm)
{
    emit(p, op);
    return emit(p, imm);
}

/* globals[0] = n in, globals[1] = result out; uses globals 2..3. */
static void build_fib_iter(struct program *p)
{
    emit1(p, OP_PUSH, 0);
    emit1(p, OP_GSTORE, 2); /* a */
    emit1(p, OP_PUSH, 1);
    emit1(p, OP_GSTORE, 3); /* b */
    u32 top = p->len;
    emit1(p, OP_GLOAD, 0);
    u32 jz = emit1(p, OP_JZ, 0);
    emit1(p, OP_GLOAD, 2);
    emit1(p, OP_GLOAD, 3);
    emit(p, OP_DUP);
    emit1(p, OP_GSTORE, 2);
    emit(p, OP_ADD);
    emit1(p, OP_GSTORE, 3);
    emit1(p, OP_GLOAD, 0);
    emit1(p, OP_PUSH, 1);
    emit(p, OP_SUB);
    emit1(p, OP_GSTORE, 0);
    emit1(p, OP_JMP, (i32)top);
    p->code[jz] = (i32)p->len;
    emit1(p, OP_GLOAD, 2);
    emit1(p, OP_GSTORE, 1);
    emit(p, OP_HALT);
}

/* fib(n) = n < 2 ? n : fib(n - 1) + fib(n - 2), n in globals[0]. */
static void build_fib_rec(struct program *p)
{
    emit1(p, OP_GLOAD, 0);
    u32 call = p->len;
    emit1(p, OP_CALL, 0);
    emit(p, 1);
    emit1(p, OP_GSTORE, 1);
    emit(p, OP_HALT);
    u32 fn = p->len;
    p->code[call + 1] = (i32)fn;
    emit1(p, OP_ARG, 0);
    emit1(p, OP_PUSH, 2);
    emit(p, OP_LT);
    u32 jz = emit1(p, OP_JZ, 0);
    emit1(p, OP_ARG, 0);
    emit(p, OP_RET);
    p->code[jz] = (i32)p->len;
    emit1(p, OP_ARG, 0);
    emit1(p, OP_PUSH, 1);
    emit(p, OP_SUB);
    emit1(p, OP_CALL, (i32)fn);
    emit(p, 1);
    emit1(p, OP_ARG, 0);
    emit1(p, OP_PUSH, 2);
    emit(p, OP_SUB);
    emit1(p, OP_CALL, (i32)fn);
    emit(p, 1);
    emit(p, OP_ADD);
    emit(p, OP_RET);
}

/* acc = acc * 31 ^ (i << (i & 7)) + (i >> 2) for i in n..1; n in globals[0]. */
static void build_mix_loop(struct program *p)
{
    emit1(p, OP_PUSH, 7);
    u32 top = p->len;
    emit1(p, OP_GLOAD, 0);
    u32 jz = emit1(p, OP_JZ, 0);
    emit1(p, OP_PUSH, 31);
    emit(p, OP_MUL);
    emit1(p, OP_GLOAD, 0);
    emit(p, OP_DUP);
    emit1(p, OP_PUSH, 7);
    emit(p, OP_AND);
    emit(p, OP_SHL);
    emit(p, OP_XOR);
    emit1(p, OP_GLOAD, 0);
    emit1(p, OP_PUSH, 2);
    emit(p, OP_SHR);
    emit(p, OP_ADD);
    emit1(p, OP_GLOAD, 0);
    emit1(p, OP_PUSH, 1);
    emit(p, OP_SUB);
    emit(p, OP_DUP);
    emit1(p, OP_GSTORE, 0);
    emit(p, OP_POP);
    emit1(p, OP_JMP, (i32)top);
    p->code[jz] = (i32)p->len;
    emit(p, OP_DUP);
    emit(p, OP_SWAP);
    emit(p, OP_OVER);
    emit(p, OP_EQ);
    emit(p, OP_ADD);
    emit1(p, OP_GSTORE, 1);
    emit(p, OP_HALT);
}

NOINLINE static i64 run_switch(const struct program *prog, i64 n)
{
    const i32 *code = prog->code;
    i64 *st = vm.stack;
    u32 pc = 0, sp = 0, fp = 0, depth = 0;
    u64 steps = 0;
    vm.globals[0] = n;
    for (;;) {
        steps++;
        switch ((enum op)code[pc++]) {
        case OP_HALT:
            vm.steps += steps;
            return vm.globals[1];
        case OP_PUSH: st[sp++] = code[pc++]; break;
        case OP_POP: sp--; break;
        case OP_DUP: st[sp] = st[sp - 1]; sp++; break;
        case OP_SWAP: { i64 t = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = t; break; }
        case OP_OVER: st[sp] = st[sp - 2]; sp++; break;
        case OP_ADD: sp--; st[sp - 1] += st[sp]; break;
        case OP_SUB: sp--; st[sp - 1] -= st[sp]; break;
        case OP_MUL: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] * (u64)st[sp]); break;
        case OP_AND: sp--; st[sp - 1] &= st[sp]; break;
        case OP_XOR: sp--; st[sp - 1] ^= st[sp]; break;
        case OP_SHL: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] << (st[sp] & 63)); break;
        case OP_SHR: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] >> (st[sp] & 63)); break;
        case OP_LT: sp--; st[sp - 1] = st[sp - 1] < st[sp]; break;
        case OP_EQ: sp--; st[sp - 1] = st[sp - 1] == st[sp]; break;
        case OP_JMP: pc = (u32)code[pc]; break;
        case OP_JZ: pc = st[--sp] == 0 ? (u32)code[pc] : pc + 1; break;
        case OP_GLOAD: st[sp++] = vm.globals[code[pc++]]; break;
        case OP_GSTORE: vm.globals[code[pc++]] = st[--sp]; break;
        case OP_ARG: st[sp++] = st[fp + (u32)code[pc++]]; break;
        case OP_CALL:
            vm.frames[depth].ret = pc + 2;
            vm.frames[depth].fp = fp;
            depth++;
            fp = sp - (u32)code[pc + 1];
            pc = (u32)code[pc];
            break;
        case OP_RET: {
            i64 r = st[--sp];
            sp = fp;
            st[sp++] = r;
            depth--;
            pc = vm.frames[depth].ret;
            fp = vm.frames[depth].fp;
            break;
        }
        default:
            return -1;
        }
    }
}

NOINLINE static i64 run_threaded(const struct program *prog, i64 n)
{
    static const void *const labels[OP_COUNT] = {
        &&op_halt, &&op_push, &&op_pop, &&op_dup, &&op_swap, &&op_over, &&op_add, &&op_sub,
        &&op_mul, &&op_and, &&op_xor, &&op_shl, &&op_shr, &&op_lt, &&op_eq, &&op_jmp, &&op_jz,
        &&op_gload, &&op_gstore, &&op_arg, &&op_call, &&op_ret,
    };
    const i32 *code = prog->code;
    i64 *st = vm.stack;
    u32 pc = 0, sp = 0, fp = 0, depth = 0;
    u64 steps = 0;
    vm.globals[0] = n;
#define NEXT                                                                                       \
    do {                                                                                           \
        steps++;                                                                                   \
        goto *labels[code[pc++]];                                                                  \
    } while (0)
    NEXT;
op_halt:
    vm.steps += steps;
    return vm.globals[1];
op_push: st[sp++] = code[pc++]; NEXT;
op_pop: sp--; NEXT;
op_dup: st[sp] = st[sp - 1]; sp++; NEXT;
op_swap: { i64 t = st[sp - 1]; st[sp - 1] = st[sp - 2]; st[sp - 2] = t; } NEXT;
op_over: st[sp] = st[sp - 2]; sp++; NEXT;
op_add: sp--; st[sp - 1] += st[sp]; NEXT;
op_sub: sp--; st[sp - 1] -= st[sp]; NEXT;
op_mul: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] * (u64)st[sp]); NEXT;
op_and: sp--; st[sp - 1] &= st[sp]; NEXT;
op_xor: sp--; st[sp - 1] ^= st[sp]; NEXT;
op_shl: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] << (st[sp] & 63)); NEXT;
op_shr: sp--; st[sp - 1] = (i64)((u64)st[sp - 1] >> (st[sp] & 63)); NEXT;
op_lt: sp--; st[sp - 1] = st[sp - 1] < st[sp]; NEXT;
op_eq: sp--; st[sp - 1] = st[sp - 1] == st[sp]; NEXT;
op_jmp: pc = (u32)code[pc]; NEXT;
op_jz: pc = st[--sp] == 0 ? (u32)code[pc] : pc + 1; NEXT;
op_gload: st[sp++] = vm.globals[code[pc++]]; NEXT;
op_gstore: vm.globals[code[pc++]] = st[--sp]; NEXT;
op_arg: st[sp++] = st[fp + (u32)code[pc++]]; NEXT;
op_call:
    vm.frames[depth].ret = pc + 2;
    vm.frames[depth].fp = fp;
    depth++;
    fp = sp - (u32)code[pc + 1];
    pc = (u32)code[pc];
    NEXT;
op_ret: {
    i64 r = st[--sp];
    sp = fp;
    st[sp++] = r;
    depth--;
    pc = vm.frames[depth].ret;
    fp = vm.frames[depth].fp;
}
    NEXT;
#undef NEXT
}

static u64 fib_c(u64 n)
{
    u64 a = 0, b = 1;
    while (n--) {
        u64 t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static i64 mix_c(i64 n)
{
    i64 acc = 7;
    for (; n; n--)
        acc = (i64)(((u64)acc * 31) ^ ((u64)n << (n & 7))) + (i64)((u64)n >> 2);
    return acc + 1;
}

int main(void)
{
    build_fib_iter(&fib_iter);
    build_fib_rec(&fib_rec);
    build_mix_loop(&mix_loop);

    u64 acc = 0;
    i64 r_iter = 0, r_rec = 0, r_mix = 0;
    for (u32 round = 0; round < SCALE; round++) {
        i64 n_iter = 5000 + round, n_rec = 18 + (round & 1), n_mix = 4000 + round;
        r_iter = run_switch(&fib_iter, n_iter);
        if (r_iter != run_threaded(&fib_iter, n_iter) || (u64)r_iter != fib_c((u64)n_iter))
            return fail("bytecode", "iterative fib");
        r_rec = run_switch(&fib_rec, n_rec);
        if (r_rec != run_threaded(&fib_rec, n_rec) || (u64)r_rec != fib_c((u64)n_rec))
            return fail("bytecode", "recursive fib");
        r_mix = run_switch(&mix_loop, n_mix);
        if (r_mix != run_threaded(&mix_loop, n_mix) || r_mix != mix_c(n_mix))
            return fail("bytecode", "mixed loop");
        acc = mix64(mix64(mix64(acc, (u64)r_iter), (u64)r_rec), (u64)r_mix);
    }
    print_str("bytecode:");
    print_kv("fib_iter", (u64)r_iter);
    print_kv("fib_rec", (u64)r_rec);
    print_kv("mix", (u64)r_mix);
    print_kv("acc", acc);
    print_kv("steps", vm.steps);
    print_nl();
    return 0;
}
