//! The typed model of one annotated item: what kind of contract it is, who owns it and
//! what its arguments say, with the values already interpreted where that cannot fail.

use proc_macro2::TokenStream;
use syn::{DeriveInput, Ident, LitInt, LitStr, Path};

use crate::attr::{self, ContractArgs, PackArgs};
use crate::ctxt::Ctxt;
use crate::owner::OwningCrate;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ContractKind {
    Event,
    Command,
}

impl ContractKind {
    pub fn noun(self) -> &'static str {
        match self {
            ContractKind::Event => "event",
            ContractKind::Command => "command",
        }
    }

    pub fn with_article(self) -> &'static str {
        match self {
            ContractKind::Event => "an event",
            ContractKind::Command => "a command",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    Read,
    WriteInternal,
    WriteExternalSideEffect,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DedupeKind {
    Connector,
    Egress,
    Command,
}

/// `#[event]` or `#[command]` on a struct or enum.
pub struct Contract {
    pub kind: ContractKind,
    pub item: DeriveInput,
    pub args: ContractArgs,
    pub owning: OwningCrate,
}

/// `#[pack]` on a unit struct.
pub struct Pack {
    pub item: DeriveInput,
    pub args: PackArgs,
    pub owning: OwningCrate,
}

/// The item could not be parsed at all: hand it back untouched with the error.
pub struct Unparsed(pub TokenStream);

fn parse_item(item: TokenStream) -> Result<DeriveInput, Unparsed> {
    syn::parse2::<DeriveInput>(item.clone()).map_err(|error| {
        let mut tokens = item;
        tokens.extend(error.to_compile_error());
        Unparsed(tokens)
    })
}

impl Contract {
    pub fn parse(
        kind: ContractKind,
        args: TokenStream,
        item: TokenStream,
        cx: &mut Ctxt,
    ) -> Result<Self, Unparsed> {
        let item = parse_item(item)?;
        let args = attr::parse_contract_args(args, cx);
        Ok(Contract {
            kind,
            item,
            args,
            owning: OwningCrate::from_env(),
        })
    }

    pub fn ident(&self) -> &Ident {
        &self.item.ident
    }

    pub fn version(&self) -> u32 {
        self.args
            .version
            .as_ref()
            .and_then(|lit| lit.base10_parse().ok())
            .unwrap_or(1)
    }

    pub fn domain(&self) -> Option<String> {
        self.args.domain.as_ref().map(LitStr::value)
    }

    pub fn safety(&self) -> Option<Safety> {
        self.args
            .safety
            .as_ref()
            .and_then(|ident| match ident.to_string().as_str() {
                "READ" => Some(Safety::Read),
                "WRITE_INTERNAL" => Some(Safety::WriteInternal),
                "WRITE_EXTERNAL_SIDE_EFFECT" => Some(Safety::WriteExternalSideEffect),
                _ => None,
            })
    }

    /// Commands default to deduplication per target aggregate.
    pub fn dedupe(&self) -> Option<DedupeKind> {
        match self
            .args
            .dedupe
            .as_ref()
            .map(ToString::to_string)
            .as_deref()
        {
            // An external effect is deduplicated per destination and tenant: inferred.
            None if self.safety() == Some(Safety::WriteExternalSideEffect) => {
                Some(DedupeKind::Egress)
            }
            None | Some("command") => Some(DedupeKind::Command),
            Some("connector") => Some(DedupeKind::Connector),
            Some("egress") => Some(DedupeKind::Egress),
            Some(_) => None,
        }
    }

    pub fn upcast_from(&self) -> Option<&Path> {
        self.args.upcast_from.as_ref()
    }

    pub fn is_public(&self) -> bool {
        self.args.public.is_some()
    }

    pub fn version_literal(&self) -> Option<&LitInt> {
        self.args.version.as_ref()
    }
}

impl Pack {
    pub fn parse(args: TokenStream, item: TokenStream, cx: &mut Ctxt) -> Result<Self, Unparsed> {
        let item = parse_item(item)?;
        let args = attr::parse_pack_args(args, cx);
        Ok(Pack {
            item,
            args,
            owning: OwningCrate::from_env(),
        })
    }
}
