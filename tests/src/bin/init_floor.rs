//! The floor of the init measurement (`scripts/bench.d/init_time.py`): a process that does
//! nothing but ask the Runtime API for work, built with the functions' release profile. What a
//! function's init adds over this is its own; the rest is process start and the harness.

use std::io::{Read, Write};
use std::net::TcpStream;

fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API");
    let mut stream = TcpStream::connect(&api).expect("the Runtime API answers");
    let request = format!(
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("the poll is sent");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
}
