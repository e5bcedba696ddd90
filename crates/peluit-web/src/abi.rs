//! The WebAssembly interface: four exported functions and no imports, so the same module
//! runs natively in the browser and, through binaryen's `wasm2js`, as plain JavaScript.
//!
//! A call is: `peluit_input(len)` returns where to write the request (32 fresh random
//! bytes, then the operation's input); `peluit_call(op)` runs it and returns 0 (answer) or
//! 1 (error JSON); `peluit_output()` and `peluit_output_len()` say where the answer is.
//! The page copies it out before the next call. docs/web.md#abi
#![allow(unsafe_code)]

use std::cell::RefCell;

use zeroize::{Zeroize, Zeroizing};

use crate::error::WebError;
use crate::rng;
use crate::session::{Op, Session};

thread_local! {
    static INPUT: RefCell<Zeroizing<Vec<u8>>> = RefCell::new(Zeroizing::new(Vec::new()));
    static OUTPUT: RefCell<Zeroizing<Vec<u8>>> = RefCell::new(Zeroizing::new(Vec::new()));
    static SESSION: RefCell<Session> = RefCell::new(Session::default());
}

/// Makes room for a request of `len` bytes and returns its address in linear memory.
// Exported under this exact name for the page's loader.
#[unsafe(no_mangle)]
pub extern "C" fn peluit_input(len: usize) -> *mut u8 {
    INPUT.with_borrow_mut(|input| {
        input.zeroize();
        input.resize(len, 0);
        input.as_mut_ptr()
    })
}

/// Runs operation `op` on the request written after [`peluit_input`].
// Exported under this exact name for the page's loader.
#[unsafe(no_mangle)]
pub extern "C" fn peluit_call(op: u32) -> u32 {
    let input = INPUT.with_borrow_mut(std::mem::take);
    let result = match (Op::from_code(op), input.split_first_chunk::<32>()) {
        (Some(op), Some((seed, request))) => {
            rng::reseed(*seed);
            SESSION.with_borrow_mut(|session| session.call(op, request))
        }
        _ => Err(WebError::bad_request("operation or seed")),
    };
    let (status, answer) = match result {
        Ok(answer) => (0, answer),
        Err(error) => (1, Zeroizing::new(error.to_json())),
    };
    OUTPUT.with_borrow_mut(|output| *output = answer);
    status
}

/// Address of the last answer.
// Exported under this exact name for the page's loader.
#[unsafe(no_mangle)]
pub extern "C" fn peluit_output() -> *const u8 {
    OUTPUT.with_borrow(|output| output.as_ptr())
}

/// Length of the last answer.
// Exported under this exact name for the page's loader.
#[unsafe(no_mangle)]
pub extern "C" fn peluit_output_len() -> usize {
    OUTPUT.with_borrow(|output| output.len())
}
