//! ZAB as a sans-IO state machine (being moved here from `server/src/zab`).
