//! Circle's tools, apart from the test suite: the parts of `circle-load` (the benchmark's load
//! tool) live in [`load`]; `circle-soak` is one binary. Both reuse the test harness's fake
//! browsers and server launcher from `circle-tests`.

pub mod load;
