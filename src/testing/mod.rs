//! Test and demo support that ships in the binary: the scripted HTTP upstream
//! (`switchyard mock-upstream`) used by the integration tests, the SDK suite and the load
//! harness. Nothing on the request path imports it.

pub mod upstream;
