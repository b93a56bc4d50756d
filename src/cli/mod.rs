//! Command implementations behind `main`.

pub mod esl;
