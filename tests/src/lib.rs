//! End-to-end stories for Peluit. The stories live in `tests/`; this library holds what
//! they share: starting real components on loopback and reading their output.
