//! Runnable examples live in `src/bin/`; this library target is intentionally empty.
