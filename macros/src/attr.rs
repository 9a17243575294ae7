//! The arguments of `#[event(...)]`, `#[command(...)]` and `#[pack(...)]`, parsed but not
//! yet validated: every key keeps its tokens so `check` can point at them.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Ident, LitInt, LitStr, Path, Token};

use crate::ctxt::Ctxt;

#[derive(Default)]
pub struct ContractArgs {
    pub domain: Option<LitStr>,
    pub version: Option<LitInt>,
    pub public: Option<Span>,
    pub upcast_from: Option<Path>,
    pub safety: Option<Ident>,
    pub dedupe: Option<Ident>,
    pub compensation: Option<Path>,
    /// Declared on purpose without a compensation: nothing can undo its effect.
    pub irreversible: Option<Span>,
    pub renamed_from: Option<LitStr>,
}

#[derive(Default)]
pub struct PackArgs {
    pub id: Option<LitStr>,
    pub version: Option<LitStr>,
    pub contracts: Vec<LitStr>,
    /// SQL files relative to the pack crate, applied in this order.
    pub migrations: Vec<LitStr>,
}

/// Keys an author might reach for to pick a name or owner; the answer is always "no".
const SPOOFING_KEYS: &[&str] = &["name", "type", "owner", "namespace", "crate", "pack"];

pub fn parse_contract_args(args: TokenStream, cx: &mut Ctxt) -> ContractArgs {
    let mut parsed = ContractArgs::default();
    let mut seen = BTreeSet::new();
    let parser = syn::meta::parser(|meta| {
        let key = key_of(&meta);
        if given_twice(&mut seen, &key, &meta, cx)? {
            return Ok(());
        }
        match key.as_str() {
            "domain" => parsed.domain = Some(meta.value()?.parse()?),
            "version" => parsed.version = Some(meta.value()?.parse()?),
            "public" => parsed.public = Some(key_span(&meta)),
            "upcast_from" => parsed.upcast_from = Some(meta.value()?.parse()?),
            "safety" => parsed.safety = Some(meta.value()?.parse()?),
            "dedupe" => parsed.dedupe = Some(meta.value()?.parse()?),
            "compensation" => parsed.compensation = Some(meta.value()?.parse()?),
            "irreversible" => parsed.irreversible = Some(key_span(&meta)),
            "renamed_from" => parsed.renamed_from = Some(meta.value()?.parse()?),
            spoof if SPOOFING_KEYS.contains(&spoof) => {
                skip_value(&meta)?;
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "`{spoof}` cannot be set: the type name and owner are derived from the defining crate; remove `{spoof}`"
                    ),
                );
            }
            other => {
                skip_value(&meta)?;
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown argument `{other}`; expected `domain`, `version`, `public`, `upcast_from`, `safety`, `dedupe`, `compensation`, `irreversible` or `renamed_from`"
                    ),
                );
            }
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        cx.syn_error(error);
    }
    parsed
}

pub fn parse_pack_args(args: TokenStream, cx: &mut Ctxt) -> PackArgs {
    let mut parsed = PackArgs::default();
    let mut seen = BTreeSet::new();
    let parser = syn::meta::parser(|meta| {
        let key = key_of(&meta);
        if given_twice(&mut seen, &key, &meta, cx)? {
            return Ok(());
        }
        match key.as_str() {
            "id" => parsed.id = Some(meta.value()?.parse()?),
            "version" => parsed.version = Some(meta.value()?.parse()?),
            "contracts" => parsed.contracts.extend(string_list(&meta)?),
            "migrations" => parsed.migrations.extend(string_list(&meta)?),
            other => {
                skip_value(&meta)?;
                cx.error_spanned_by(
                    &meta.path,
                    format!("unknown argument `{other}`; expected `id`, `version`, `contracts` or `migrations`"),
                );
            }
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        cx.syn_error(error);
    }
    parsed
}

/// A key given a second time is refused (which one would win is a guess), and its value
/// skipped so the rest is still read.
fn given_twice(
    seen: &mut BTreeSet<String>,
    key: &str,
    meta: &ParseNestedMeta,
    cx: &mut Ctxt,
) -> syn::Result<bool> {
    if seen.insert(key.to_owned()) {
        return Ok(false);
    }
    if meta.input.peek(Token![=]) {
        meta.value()?;
        while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
            meta.input.parse::<proc_macro2::TokenTree>()?;
        }
    }
    cx.error_spanned_by(&meta.path, format!("`{key}` is given twice; keep one"));
    Ok(true)
}

/// `key = ["a", "b"]`.
fn string_list(meta: &ParseNestedMeta) -> syn::Result<Vec<LitStr>> {
    let content;
    meta.value()?;
    syn::bracketed!(content in meta.input);
    let list = content.parse_terminated(|input| input.parse::<LitStr>(), Token![,])?;
    Ok(list.into_iter().collect())
}

fn key_of(meta: &ParseNestedMeta) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| quote::ToTokens::to_token_stream(&meta.path).to_string())
}

fn key_span(meta: &ParseNestedMeta) -> Span {
    syn::spanned::Spanned::span(&meta.path)
}

/// Consumes `= value` after an unknown key so parsing can go on and report the rest.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    }
    Ok(())
}
