//! Attribute macros for pack authors. Each one is parse → check → expand:
//! [`ast`] reads the item and its arguments into a typed model, [`check`] validates the
//! model against the rules of the constitution (collecting every error), and [`expand`]
//! writes the trait impls and the registry submission. On error the original item is
//! kept and `compile_error!`s are appended, so one mistake does not cascade.

mod ast;
mod attr;
mod check;
mod code_hash;
mod ctxt;
mod expand;
mod owner;
mod sandbox;

use proc_macro::TokenStream;

/// A versioned event payload: `#[event(domain = "incident", version = 2, upcast_from = v1::IncidentOpened)]`.
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::contract(ast::ContractKind::Event, args.into(), item.into()).into()
}

/// A command payload: `#[command(domain = "incident", safety = WRITE_INTERNAL)]`.
#[proc_macro_attribute]
pub fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::contract(ast::ContractKind::Command, args.into(), item.into()).into()
}

/// A value type used inside payloads (a field of an event or command).
#[proc_macro_attribute]
pub fn data(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::data(args.into(), item.into()).into()
}

/// The pack manifest: `#[pack(id = "incidents", version = "0.1.0", contracts = ["ops-contract-incidents"])]`.
#[proc_macro_attribute]
pub fn pack(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::pack(args.into(), item.into()).into()
}
