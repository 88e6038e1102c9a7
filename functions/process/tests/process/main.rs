//! The process stage's tests, one binary: the cleaning rules through the real stage (`stage`), catching up lost events (`catch_up`), and the binary's entry point (`entry_point`).

mod catch_up;
mod entry_point;
mod stage;
