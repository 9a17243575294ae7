// A pack cannot name its events into another pack's namespace.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::event;

#[event(domain = "invoice", name = "pack.billing.invoice.InvoicePaid", owner = "billing")]
pub(crate) struct InvoicePaid {
    amount_cents: u64,
}

fn main() {}
