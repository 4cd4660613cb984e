//! Guest exceptions as values. A helper or an engine that detects an architectural exception
//! returns one of these; it is never a host error.

/// An architectural x86 exception raised by guest execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #DE (vector 0): DIV/IDIV by zero or quotient overflow.
    DivideError,
    /// #DB (vector 1).
    Debug,
    /// #BP (vector 3): INT3.
    Breakpoint,
    /// #OF (vector 4): INTO with OF set.
    Overflow,
    /// #BR (vector 5).
    BoundRange,
    /// #UD (vector 6): undefined opcode.
    InvalidOpcode,
    /// #NM (vector 7).
    DeviceNotAvailable,
    /// #DF (vector 8).
    DoubleFault,
    /// #TS (vector 10) with its selector error code.
    InvalidTss(u16),
    /// #NP (vector 11).
    SegmentNotPresent(u16),
    /// #SS (vector 12).
    StackFault(u16),
    /// #GP (vector 13) with its error code.
    GeneralProtection(u16),
    /// #PF (vector 14): faulting linear address (CR2) and error code.
    PageFault { addr: u64, code: u32 },
    /// #MF (vector 16).
    FloatingPoint,
    /// #AC (vector 17).
    AlignmentCheck,
    /// #MC (vector 18).
    MachineCheck,
    /// #XM (vector 19).
    SimdFloatingPoint,
}

impl Exception {
    /// The interrupt vector of this exception.
    pub const fn vector(self) -> u8 {
        match self {
            Exception::DivideError => 0,
            Exception::Debug => 1,
            Exception::Breakpoint => 3,
            Exception::Overflow => 4,
            Exception::BoundRange => 5,
            Exception::InvalidOpcode => 6,
            Exception::DeviceNotAvailable => 7,
            Exception::DoubleFault => 8,
            Exception::InvalidTss(_) => 10,
            Exception::SegmentNotPresent(_) => 11,
            Exception::StackFault(_) => 12,
            Exception::GeneralProtection(_) => 13,
            Exception::PageFault { .. } => 14,
            Exception::FloatingPoint => 16,
            Exception::AlignmentCheck => 17,
            Exception::MachineCheck => 18,
            Exception::SimdFloatingPoint => 19,
        }
    }

    /// The error code pushed for this exception, if it has one.
    pub const fn error_code(self) -> Option<u32> {
        match self {
            Exception::DoubleFault | Exception::AlignmentCheck => Some(0),
            Exception::InvalidTss(s)
            | Exception::SegmentNotPresent(s)
            | Exception::StackFault(s)
            | Exception::GeneralProtection(s) => Some(s as u32),
            Exception::PageFault { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The faulting address (CR2) for a page fault.
    pub const fn fault_addr(self) -> u64 {
        match self {
            Exception::PageFault { addr, .. } => addr,
            _ => 0,
        }
    }

    /// Rebuild an exception from its stored form (vector, error code, address), as kept in
    /// [`crate::state::CpuState`]. Unknown vectors give `None`.
    pub fn from_parts(vector: u8, code: u32, addr: u64) -> Option<Exception> {
        Some(match vector {
            0 => Exception::DivideError,
            1 => Exception::Debug,
            3 => Exception::Breakpoint,
            4 => Exception::Overflow,
            5 => Exception::BoundRange,
            6 => Exception::InvalidOpcode,
            7 => Exception::DeviceNotAvailable,
            8 => Exception::DoubleFault,
            10 => Exception::InvalidTss(code as u16),
            11 => Exception::SegmentNotPresent(code as u16),
            12 => Exception::StackFault(code as u16),
            13 => Exception::GeneralProtection(code as u16),
            14 => Exception::PageFault { addr, code },
            16 => Exception::FloatingPoint,
            17 => Exception::AlignmentCheck,
            18 => Exception::MachineCheck,
            19 => Exception::SimdFloatingPoint,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Exception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Exception::DivideError => "#DE divide error",
            Exception::Debug => "#DB debug",
            Exception::Breakpoint => "#BP breakpoint",
            Exception::Overflow => "#OF overflow",
            Exception::BoundRange => "#BR bound range",
            Exception::InvalidOpcode => "#UD invalid opcode",
            Exception::DeviceNotAvailable => "#NM device not available",
            Exception::DoubleFault => "#DF double fault",
            Exception::InvalidTss(_) => "#TS invalid TSS",
            Exception::SegmentNotPresent(_) => "#NP segment not present",
            Exception::StackFault(_) => "#SS stack fault",
            Exception::GeneralProtection(_) => "#GP general protection",
            Exception::PageFault { .. } => "#PF page fault",
            Exception::FloatingPoint => "#MF x87 error",
            Exception::AlignmentCheck => "#AC alignment check",
            Exception::MachineCheck => "#MC machine check",
            Exception::SimdFloatingPoint => "#XM SIMD error",
        };
        write!(f, "{name}")?;
        if let Exception::PageFault { addr, code } = self {
            write!(f, " at {addr:#x} (error code {code:#x})")?;
        } else if let Some(c) = self.error_code() {
            write!(f, " (error code {c:#x})")?;
        }
        Ok(())
    }
}
