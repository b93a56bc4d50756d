//! Command implementations behind `main`.

pub mod esl;
pub mod sim;
