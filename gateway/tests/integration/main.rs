//! The gateway's integration tests, as one test binary: each module was once a binary of its
//! own, and every one of them compiled `support` and linked the gateway, the bridge, the load
//! generator and the test kit again. nextest still runs each test in a process of its own, so
//! nothing here shares state between tests (none sets environment variables or process-wide
//! state anyway); a test is named by its module, e.g. `auth::every_bad_credential_gets_a_specific_json_error`.
//!
//! The fleet test (`deployment`) is here too: it builds the same things and is picked out by a
//! filter (`just test-fleet`).

mod support;

mod admission;
mod auth;
mod debounce;
mod delivery;
mod deployment;
mod dlq;
mod exact_history;
mod feed_recovery;
mod fleet;
mod history;
mod history_budget;
mod history_memory;
mod hostile_input;
mod one_answer;
mod ops_files;
mod process;
mod replay_budget;
mod resume;
mod security;
mod socket_costs;
mod source_gap;
mod stats;
mod websocket;
