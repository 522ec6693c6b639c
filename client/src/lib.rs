//! paddock-client (in progress).
