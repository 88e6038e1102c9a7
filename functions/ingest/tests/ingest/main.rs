//! The ingest stage's tests, one binary: the stage against the real source and faults (`stage`), against an independent course-API double (`course_api`), the schedule's catch-up (`catch_up`), the binary's entry points (`entry_points`), and a batch API over HTTPS (`https`).

mod catch_up;
mod course_api;
mod entry_points;
mod https;
mod stage;
mod support;
