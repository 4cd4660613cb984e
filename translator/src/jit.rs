//! Cranelift emitter (in progress).
