//! End-to-end tests of Palaver (see `tests/README.md`): `tests/chart_run.rs` renders the
//! Helm chart and runs each of its Deployments as local processes of the real binaries,
//! then drives the whole system through the gateway. This library is intentionally empty.
