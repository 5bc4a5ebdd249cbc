//! The rules' only notion of time.

/// Unix time in milliseconds: the only clock the rules know, always passed in.
pub type Millis = u64;
