//! The request path: `pending` + `prep` turn writes into transactions; `read` answers
//! reads from the applied tree. The server core sequences them per session.

pub mod pending;
pub mod prep;
pub mod read;
