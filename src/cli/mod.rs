//! Command implementations behind `main`.

pub mod esl;
pub mod lab;
pub mod serve;
pub mod sim;
pub mod webhook;
