//! Code generation. Everything generated lives in `const _: () = { ... };` and names items
//! by absolute path, so the author's `use`s and shadowing never change its meaning.
//!
//! A rejected item is still emitted with its derives and trait impls (but never
//! registered), as thiserror does, so one mistake gives one error and not a cascade of
//! "not an event" or schema-derive hints wherever the type is used.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Contract, ContractKind, DedupeKind, Pack, Safety, Unparsed};
use crate::check;
use crate::ctxt::Ctxt;
use crate::owner::OwningCrate;
use crate::sandbox;

pub fn contract(kind: ContractKind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let contract = match Contract::parse(kind, args, item, &mut cx) {
        Ok(contract) => contract,
        Err(Unparsed(tokens)) => return tokens,
    };
    check::contract(&contract, &mut cx);
    let sandbox = sandbox::check(&contract.owning);
    let expanded = match cx.finish() {
        Ok(()) => contract_impls(&contract),
        Err(errors) => {
            let fallback = if check::shape_is_sound(&contract.item) {
                let item = serde_and_schema(&contract.item);
                let impls = trait_impls(&contract);
                quote!(#item const _: () = { #impls };)
            } else {
                derives_if_possible(&contract.item)
            };
            quote!(#fallback #errors)
        }
    };
    quote!(#expanded #sandbox)
}

pub fn data(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    if !args.is_empty() {
        cx.error_spanned_by(&args, "`#[data]` takes no arguments");
    }
    let item: syn::DeriveInput = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(error) => return with_errors(&item, error.to_compile_error()),
    };
    check::payload_shape(&item, "a payload type", &mut cx);
    check::personal_data(&item, &mut cx);
    let sandbox = sandbox::check(&OwningCrate::from_env());
    let expanded = match cx.finish() {
        Ok(()) => serde_and_schema(&item),
        Err(errors) => with_errors(&derives_if_possible(&item), errors),
    };
    quote!(#expanded #sandbox)
}

pub fn pack(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let pack = match Pack::parse(args, item, &mut cx) {
        Ok(pack) => pack,
        Err(Unparsed(tokens)) => return tokens,
    };
    check::pack(&pack, &mut cx);
    let sandbox = sandbox::check(&pack.owning);
    let expanded = match cx.finish() {
        Ok(()) => pack_impls(&pack),
        Err(errors) => {
            let item = &pack.item;
            let impl_pack = pack_trait_impl(&pack);
            quote!(#item const _: () = { #impl_pack }; #errors)
        }
    };
    quote!(#expanded #sandbox)
}

/// The item with its serde and schema derives, unless it is a union (which they refuse).
fn derives_if_possible(item: &syn::DeriveInput) -> TokenStream {
    match item.data {
        syn::Data::Union(_) => quote!(#item),
        _ => serde_and_schema(item),
    }
}

/// The original item stays, so one mistake does not turn into "type not found" elsewhere.
fn with_errors(item: &impl quote::ToTokens, errors: TokenStream) -> TokenStream {
    quote!(#item #errors)
}

fn serde_and_schema(item: &syn::DeriveInput) -> TokenStream {
    let item = &mark_sensitive(item);
    quote! {
        #[derive(
            ::ops_core::__private::serde::Serialize,
            ::ops_core::__private::serde::Deserialize,
            ::ops_core::__private::schemars::JsonSchema
        )]
        #[serde(crate = "::ops_core::__private::serde")]
        #[schemars(crate = "::ops_core::__private::schemars")]
        #item
    }
}

/// `#[sensitive]` on a field becomes `x-sensitive: true` in its schema: query results
/// redact it unless the caller's capability reveals the type's sensitive fields, and the
/// runtime encrypts it per data subject. `#[subject]` becomes `x-subject: true`: the fields
/// that together say whose data the object holds.
fn mark_sensitive(item: &syn::DeriveInput) -> syn::DeriveInput {
    let mut item = item.clone();
    let mark = |fields: &mut syn::Fields| {
        for field in fields.iter_mut() {
            for (attribute, keyword) in [("sensitive", "x-sensitive"), ("subject", "x-subject")] {
                let before = field.attrs.len();
                field.attrs.retain(|attr| !attr.path().is_ident(attribute));
                if field.attrs.len() != before {
                    field
                        .attrs
                        .push(syn::parse_quote!(#[schemars(extend(#keyword = true))]));
                }
            }
        }
    };
    match &mut item.data {
        syn::Data::Struct(data) => mark(&mut data.fields),
        syn::Data::Enum(data) => data.variants.iter_mut().for_each(|v| mark(&mut v.fields)),
        syn::Data::Union(_) => {}
    }
    item
}

fn contract_impls(contract: &Contract) -> TokenStream {
    let item = serde_and_schema(&contract.item);
    let ident = contract.ident();
    let impls = trait_impls(contract);
    let (upcast_checks, upcast_from) = upcast_parts(contract);
    let identity = compiled_in_owner_check(&contract.owning)
        .map(|(expected, message)| quote!(.compiled_in(#expected, #message)));
    let renamed_from = contract
        .args
        .renamed_from
        .as_ref()
        .map(|old| quote!(.renamed_from(#old)));
    let describe = match (contract.kind, &contract.args.compensation) {
        (ContractKind::Event, _) => quote!(describe_event),
        (ContractKind::Command, None) => quote!(describe_command),
        (ContractKind::Command, Some(_)) => quote!(describe_effect),
    };
    let rust_type = format!("::{ident}");
    // The descriptor is built by a `const fn` of ops-core from the type's impls; only what
    // they do not say is spelled out here. Every item emitted here is one more the compiler
    // checks on each build of the crate: the owner check rides in the descriptor's
    // evaluation, and the descriptor is `submit!`'s value, not a constant of its own.
    quote! {
        #item
        const _: () = {
            #impls
            #upcast_checks
            ::ops_core::__private::inventory::submit! {
                ::ops_core::__private::#describe::<#ident>(
                    ::ops_core::__private::Declared::at(
                        ::core::concat!(::core::module_path!(), #rust_type),
                        ::core::env!("CARGO_PKG_NAME"),
                        ::core::env!("CARGO_PKG_VERSION"),
                        ::core::file!(),
                        ::core::line!(),
                    )
                    #identity
                    #renamed_from
                    #upcast_from
                )
            }
        };
    }
}

/// `pack.<id>.<domain>.<Name>`, or the bare name when the owner is unknown (a rejected item).
fn type_name(contract: &Contract) -> String {
    let ident = contract.ident().to_string();
    match &contract.owning.owner {
        Ok(owner) => owner.type_name(contract.domain().as_deref(), &ident),
        Err(_) => ident,
    }
}

fn kind_of(contract: &Contract) -> TokenStream {
    match contract.kind {
        ContractKind::Event => quote!(::ops_core::contract::Kind::Event),
        ContractKind::Command => quote!(::ops_core::contract::Kind::Command),
    }
}

fn visibility_of(contract: &Contract) -> TokenStream {
    if contract.is_public() {
        quote!(::ops_core::contract::Visibility::Public)
    } else {
        quote!(::ops_core::contract::Visibility::Private)
    }
}

/// `Contract` and `Event` or `Command` (and `ExternalEffect`): what code using the type needs,
/// emitted for a rejected item too.
fn trait_impls(contract: &Contract) -> TokenStream {
    let ident = contract.ident();
    let type_name = type_name(contract);
    let version = contract.version();
    let (kind, visibility) = (kind_of(contract), visibility_of(contract));
    let kind_impl = match contract.kind {
        ContractKind::Event => quote! {
            impl ::ops_core::__private::EventSeal for #ident {}
            impl ::ops_core::contract::Event for #ident {}
        },
        ContractKind::Command => command_impls(contract),
    };
    quote! {
        impl ::ops_core::__private::ContractSeal for #ident {}
        impl ::ops_core::contract::Contract for #ident {
            const TYPE: &'static str = #type_name;
            const VERSION: u32 = #version;
            const KIND: ::ops_core::contract::Kind = #kind;
            const VISIBILITY: ::ops_core::contract::Visibility = #visibility;
        }
        #kind_impl
    }
}

/// The crate the generated code must find itself in, and what the build says when it does
/// not; `None` where that is not known (trybuild's cases).
fn compiled_in_owner_check(owning: &OwningCrate) -> Option<(&str, String)> {
    let expected = owning.compiled_as.as_deref()?;
    let message = format!(
        "this type claims the owner of crate `{}`, but it is compiled in another crate; the owner is the crate that compiles the type: remove the `CARGO_PKG_NAME` override (a build script's `cargo::rustc-env`)",
        owning.crate_name
    );
    Some((expected, message))
}

/// A build script can rewrite `CARGO_PKG_NAME`, not the crate rustc compiles: the type must
/// find itself in the crate whose name gives it its owner.
fn compiled_in_owner(owning: &OwningCrate) -> TokenStream {
    let Some((expected, message)) = compiled_in_owner_check(owning) else {
        return quote!();
    };
    quote! {
        const _: () = ::ops_core::__private::assert_compiled_in(
            ::core::module_path!(),
            #expected,
            #message,
        );
    }
}

/// The `Command` (and `ExternalEffect`) impls. A rejected command still gets them, with
/// the defaults where its arguments could not be read.
fn command_impls(contract: &Contract) -> TokenStream {
    let ident = contract.ident();
    let safety = match contract.safety().unwrap_or(Safety::WriteInternal) {
        Safety::Read => quote!(Read),
        Safety::WriteInternal => quote!(WriteInternal),
        Safety::WriteExternalSideEffect => quote!(WriteExternalSideEffect),
    };
    let dedupe = match contract.dedupe().unwrap_or(DedupeKind::Command) {
        DedupeKind::Command => quote!(Command),
        DedupeKind::Connector => quote!(Connector),
        DedupeKind::Egress => quote!(Egress),
    };
    let external_impl = contract.args.compensation.as_ref().map(|path| {
        quote_spanned! {path.span()=>
            impl ::ops_core::__private::EffectSeal for #ident {}
            impl ::ops_core::contract::ExternalEffect for #ident {
                type Compensation = #path;
            }
        }
    });
    quote! {
        impl ::ops_core::__private::CommandSeal for #ident {}
        impl ::ops_core::contract::Command for #ident {
            const SAFETY: ::ops_core::contract::SafetyClass =
                ::ops_core::contract::SafetyClass::#safety;
            const DEDUPE: ::ops_core::contract::DedupeKind =
                ::ops_core::contract::DedupeKind::#dedupe;
        }
        #external_impl
    }
}

/// Compile-time proof that `upcast_from` names the previous version of the same type and
/// that an `Upcast` impl exists, plus the JSON-level upcaster for the registry.
fn upcast_parts(contract: &Contract) -> (TokenStream, TokenStream) {
    let Some(previous) = contract.upcast_from() else {
        return (quote!(), quote!());
    };
    let ident = contract.ident();
    let version = contract.version();
    let span = previous.span();
    let wrong_version = format!(
        "`upcast_from` of `{ident}` version {version} must name its version {} type",
        version - 1
    );
    let wrong_type = format!(
        "`upcast_from` of `{ident}` must name an earlier version of the same type (same owner, domain and name)"
    );
    let checks = quote_spanned! {span=>
        const _: () = ::core::assert!(
            <#previous as ::ops_core::contract::Contract>::VERSION + 1 == #version,
            #wrong_version
        );
        const _: () = ::core::assert!(
            ::ops_core::__private::same_str(
                <#previous as ::ops_core::contract::Contract>::TYPE,
                <#ident as ::ops_core::contract::Contract>::TYPE
            ),
            #wrong_type
        );
    };
    let upcaster = quote_spanned! {span=>
        .upcast_from::<#previous, #ident>()
    };
    (checks, upcaster)
}

fn pack_trait_impl(pack: &Pack) -> TokenStream {
    let ident = &pack.item.ident;
    let id = pack
        .args
        .id
        .as_ref()
        .map(syn::LitStr::value)
        .unwrap_or_default();
    let contracts = pack.args.contracts.iter();
    quote! {
        impl ::ops_core::__private::PackSeal for #ident {}
        impl ::ops_core::pack::Pack for #ident {
            const ID: &'static str = #id;
            const VERSION: &'static str = ::core::env!("CARGO_PKG_VERSION");
            const CONTRACTS: &'static [&'static str] = &[#(#contracts),*];
        }
    }
}

fn pack_impls(pack: &Pack) -> TokenStream {
    let item = &pack.item;
    let ident = &item.ident;
    let id = pack
        .args
        .id
        .as_ref()
        .expect("checked: the id is present")
        .value();
    let impl_pack = pack_trait_impl(pack);
    let identity = compiled_in_owner(&pack.owning);
    let code_hash = match crate::code_hash::of_crate() {
        Ok(hash) => quote! { #hash },
        Err(reason) => {
            let message = format!("cannot hash this pack's code for its release: {reason}");
            quote! { ::core::compile_error!(#message) }
        }
    };
    let migrations = pack.args.migrations.iter().map(|file| {
        let name = std::path::Path::new(&file.value())
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        quote! {
            ::ops_core::pack::PackMigration {
                name: #name,
                sql: ::core::include_str!(::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", #file)),
            }
        }
    });
    // A second `#[pack]` anywhere in the crate defines this exported macro again, which
    // rustc rejects crate-wide (E0428) naming both places.
    let one_per_crate = quote_spanned! {Span::call_site()=>
        #[doc(hidden)]
        #[macro_export]
        macro_rules! a_crate_declares_exactly_one_pack_remove_the_second_pack_attribute {
            () => {};
        }
    };
    // Each listed contract module is linked, so its registrations are there even when the
    // pack's code names none of its types; one that is not a dependency fails to compile
    // here, at its name in `contracts`.
    let linked = pack.args.contracts.iter().filter_map(|contract| {
        // A name that is no crate name is the check's error already.
        let name = syn::parse_str::<syn::Ident>(&contract.value().replace('-', "_")).ok()?;
        let name = syn::Ident::new(&name.to_string(), contract.span());
        Some(quote_spanned! {contract.span()=>
            #[allow(unused_extern_crates)]
            extern crate #name as _;
        })
    });
    quote! {
        #item
        #one_per_crate
        #(#linked)*
        const _: () = {
            #impl_pack
            #identity
            ::ops_core::__private::inventory::submit! {
                ::ops_core::pack::PackDescriptor {
                    id: #id,
                    version: ::core::env!("CARGO_PKG_VERSION"),
                    crate_name: ::core::env!("CARGO_PKG_NAME"),
                    contracts: <#ident as ::ops_core::pack::Pack>::CONTRACTS,
                    migrations: &[#(#migrations),*],
                    code_hash: #code_hash,
                    rust_type: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    type_path: ::core::any::type_name::<#ident>,
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        };
    }
}
