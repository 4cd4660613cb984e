//! placeholder

pub mod diff;
pub mod guests;
pub mod native;
