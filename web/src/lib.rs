//! The Yew front end, compiled to WebAssembly and typed from `../schema.graphql`.
//!
//! A compiling placeholder until the web issue (issue 6).
