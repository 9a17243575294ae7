//! Validation of the parsed model. Every rule reports into [`Ctxt`] and carries on, so the
//! author sees every mistake at once; each message says what to do.

use quote::ToTokens;
use syn::{Data, DeriveInput, Fields, Type, Visibility};

use crate::ast::{Contract, ContractKind, DedupeKind, Pack, Safety};
use crate::ctxt::Ctxt;
use crate::owner::{Owner, is_identifier};

pub fn contract(contract: &Contract, cx: &mut Ctxt) {
    payload_shape(&contract.item, contract.kind.with_article(), cx);
    personal_data(&contract.item, cx);
    let owner = match &contract.owning.owner {
        Ok(owner) => owner,
        Err(message) => {
            cx.error_spanned_by(contract.ident(), message);
            return;
        }
    };
    domain(contract, owner, cx);
    version(contract, cx);
    visibility(contract, owner, cx);
    renamed_from(contract, owner, cx);
    match contract.kind {
        ContractKind::Event => event_only(contract, cx),
        ContractKind::Command => command_only(contract, cx),
    }
}

/// Payloads are owned, concrete data: one schema per registered type.
/// `noun` comes with its article: "an event", "a command".
pub fn payload_shape(item: &DeriveInput, noun: &str, cx: &mut Ctxt) {
    let name = &item.ident;
    if let Data::Union(union) = &item.data {
        cx.error_spanned_by(
            union.union_token,
            format!("`{name}` is a union; {noun} must be a struct or an enum"),
        );
    }
    if let Some(lifetime) = item.generics.lifetimes().next() {
        cx.error_spanned_by(
            lifetime,
            format!("`{name}` borrows data; {noun} owns its data, so remove the lifetime and use owned fields (`String`, `Vec<T>`)"),
        );
    } else if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            format!("`{name}` is generic; {noun} needs one concrete schema, so replace the type parameters with concrete types"),
        );
    }
    for field in fields_of(item) {
        if let Some(borrow) = first_borrow(&field.ty) {
            let field_name = field.ident.as_ref().map_or_else(
                || "a tuple field".to_owned(),
                |ident| format!("field `{ident}`"),
            );
            cx.error_spanned_by(
                borrow,
                format!("{field_name} of `{name}` is borrowed; {noun} owns its data, use an owned type (`String`, `Vec<T>`, `Box<T>`)"),
            );
        }
    }
}

/// Whether the item can carry the contract traits: a struct or enum without generics or
/// borrowed fields (a rejected one of those gets no impls, which would only add errors).
pub fn shape_is_sound(item: &DeriveInput) -> bool {
    let mut cx = Ctxt::default();
    payload_shape(item, "a payload", &mut cx);
    cx.finish().is_ok()
}

/// A `#[sensitive]` field is sealed under the key of the data subject that the `#[subject]`
/// fields beside it name. Without them it would be stored in clear and could never be
/// erased, so every struct or variant with a sensitive field says whose data it holds.
pub fn personal_data(item: &DeriveInput, cx: &mut Ctxt) {
    let has = |field: &syn::Field, name: &str| field.attrs.iter().any(|a| a.path().is_ident(name));
    let mut check = |fields: &Fields, place: String| {
        if fields.iter().any(|field| has(field, "subject")) {
            return;
        }
        for field in fields.iter().filter(|field| has(field, "sensitive")) {
            let attribute = field
                .attrs
                .iter()
                .find(|a| a.path().is_ident("sensitive"))
                .expect("filtered on it");
            let field_name = field.ident.as_ref().map_or_else(
                || "a tuple field".to_owned(),
                |ident| format!("field `{ident}`"),
            );
            cx.error_spanned_by(
                attribute,
                format!("{field_name} of {place} is `#[sensitive]`, but {place} has no `#[subject]` field, so this personal data would be stored in clear and could never be erased; mark the fields that say whose data it is `#[subject]`, or hold it in a `#[data]` type that has them (like `ops_shared_people::PersonRef`)"),
            );
        }
    };
    let name = &item.ident;
    match &item.data {
        Data::Struct(data) => check(&data.fields, format!("`{name}`")),
        Data::Enum(data) => {
            for variant in &data.variants {
                check(&variant.fields, format!("`{name}::{}`", variant.ident));
            }
        }
        Data::Union(_) => {}
    }
}

fn fields_of(item: &DeriveInput) -> Vec<&syn::Field> {
    match &item.data {
        Data::Struct(data) => data.fields.iter().collect(),
        Data::Enum(data) => data
            .variants
            .iter()
            .flat_map(|variant| variant.fields.iter())
            .collect(),
        Data::Union(_) => Vec::new(),
    }
}

/// The first reference type anywhere inside `ty` (`&str`, `Vec<&T>`, `(u8, &T)`, ...).
fn first_borrow(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(_) => Some(ty),
        Type::Array(array) => first_borrow(&array.elem),
        Type::Slice(slice) => first_borrow(&slice.elem),
        Type::Paren(paren) => first_borrow(&paren.elem),
        Type::Group(group) => first_borrow(&group.elem),
        Type::Tuple(tuple) => tuple.elems.iter().find_map(first_borrow),
        Type::Path(path) => {
            path.path
                .segments
                .iter()
                .find_map(|segment| match &segment.arguments {
                    syn::PathArguments::AngleBracketed(arguments) => {
                        arguments.args.iter().find_map(|argument| match argument {
                            syn::GenericArgument::Type(inner) => first_borrow(inner),
                            _ => None,
                        })
                    }
                    _ => None,
                })
        }
        _ => None,
    }
}

fn domain(contract: &Contract, owner: &Owner, cx: &mut Ctxt) {
    let noun = contract.kind.noun();
    match (&contract.args.domain, owner.needs_domain()) {
        (None, true) => cx.error_spanned_by(
            contract.ident(),
            format!(
                "{noun} `{}` of {owner} needs a domain: add `domain = \"...\"` (its name becomes `pack.<id>.<domain>.{}`)",
                contract.ident(),
                contract.ident()
            ),
        ),
        (Some(domain), false) => cx.error_spanned_by(
            domain,
            format!("types of {owner} have no domain segment; remove `domain`"),
        ),
        (Some(domain), true) if !is_identifier(&domain.value()) => cx.error_spanned_by(
            domain,
            "a domain is lower-case letters, digits and `_`, starting with a letter",
        ),
        _ => {}
    }
}

fn version(contract: &Contract, cx: &mut Ctxt) {
    let name = contract.ident();
    let noun = contract.kind.noun();
    if let Some(literal) = contract.version_literal() {
        match literal.base10_parse::<u32>() {
            Ok(version) if version >= 1 => {}
            _ => cx.error_spanned_by(
                literal,
                "`version` is the payload schema version: a whole number from 1",
            ),
        }
    }
    let version = contract.version();
    match (version, contract.upcast_from()) {
        (1, Some(path)) => cx.error_spanned_by(
            path,
            format!("version 1 of `{name}` is the first; remove `upcast_from`"),
        ),
        (2.., None) => {
            let previous = version - 1;
            let at = contract
                .version_literal()
                .map_or_else(|| name.to_token_stream(), ToTokens::to_token_stream);
            cx.error_spanned_by(
                at,
                format!(
                    "version {version} of {noun} `{name}` needs an upcaster from version {previous}: add `upcast_from = <the version {previous} type>` and `impl ops_core::contract::Upcast<...> for {name}`"
                ),
            );
        }
        _ => {}
    }
}

fn visibility(contract: &Contract, owner: &Owner, cx: &mut Ctxt) {
    let name = contract.ident();
    let noun = contract.kind.noun();
    let is_pub = matches!(contract.item.vis, Visibility::Public(_));
    match (owner, contract.args.public) {
        (Owner::Pack { pack_id }, Some(public)) => cx.syn_error(syn::Error::new(
            public,
            format!(
                "{noun} `{name}` is private to pack `{pack_id}`; move it to `ops-contract-{}` and mark it `#[{noun}(public)]` to publish it",
                pack_id.replace('_', "-")
            ),
        )),
        (Owner::Pack { pack_id }, None) if is_pub => cx.error_spanned_by(
            &contract.item.vis,
            format!(
                "{noun} `{name}` is private to pack `{pack_id}`, so it cannot be `pub`; use `pub(crate)`, or move it to `ops-contract-{}` and mark it `#[{noun}(public)]`",
                pack_id.replace('_', "-")
            ),
        ),
        (Owner::Pack { .. }, None) => {}
        (_, None) => cx.error_spanned_by(
            name,
            format!("types of {owner} are its public surface; mark it `#[{noun}(public, ...)]`"),
        ),
        (_, Some(_)) if !is_pub => cx.error_spanned_by(
            name,
            format!("public {noun} `{name}` must be declared `pub`"),
        ),
        (_, Some(_)) => {}
    }
}

/// A rename keeps the owner: the old name must lie in the namespace the new one is derived in.
fn renamed_from(contract: &Contract, owner: &Owner, cx: &mut Ctxt) {
    let Some(literal) = &contract.args.renamed_from else {
        return;
    };
    let old = literal.value();
    let name = owner.type_name(contract.domain().as_deref(), &contract.ident().to_string());
    let namespace = owner.namespace();
    if old == name {
        cx.error_spanned_by(
            literal,
            format!("`{name}` cannot be renamed from itself; remove `renamed_from`"),
        );
    } else if !old.strip_prefix(&namespace).is_some_and(is_dotted_name) {
        cx.error_spanned_by(
            literal,
            format!("`renamed_from` names a type of this owner, like `{namespace}<domain>.<Name>`; a rename cannot move a type to another owner"),
        );
    }
}

/// `domain.Name` or `Name`: identifiers separated by dots, the last one a Rust type name.
fn is_dotted_name(text: &str) -> bool {
    let mut segments: Vec<&str> = text.split('.').collect();
    let last = segments.pop().unwrap_or_default();
    segments.iter().all(|segment| is_identifier(segment))
        && last.starts_with(|c: char| c.is_ascii_uppercase())
        && last.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn event_only(contract: &Contract, cx: &mut Ctxt) {
    let args = &contract.args;
    for (present, key) in [
        (
            args.safety.as_ref().map(ToTokens::to_token_stream),
            "safety",
        ),
        (
            args.dedupe.as_ref().map(ToTokens::to_token_stream),
            "dedupe",
        ),
        (
            args.compensation.as_ref().map(ToTokens::to_token_stream),
            "compensation",
        ),
        (
            args.irreversible
                .map(|span| quote::quote_spanned!(span=> irreversible)),
            "irreversible",
        ),
    ] {
        if let Some(tokens) = present {
            cx.error_spanned_by(
                tokens,
                format!("`{key}` is for commands; events record facts and take no `{key}`"),
            );
        }
    }
}

fn command_only(contract: &Contract, cx: &mut Ctxt) {
    let name = contract.ident();
    match (&contract.args.safety, contract.safety()) {
        (None, _) => cx.error_spanned_by(
            name,
            format!("command `{name}` needs a safety class: add `safety = READ`, `WRITE_INTERNAL` or `WRITE_EXTERNAL_SIDE_EFFECT`"),
        ),
        (Some(ident), None) => cx.error_spanned_by(
            ident,
            format!("unknown safety class `{ident}`; expected `READ`, `WRITE_INTERNAL` or `WRITE_EXTERNAL_SIDE_EFFECT`"),
        ),
        (Some(_), Some(_)) => {}
    }
    match (&contract.args.dedupe, contract.dedupe(), contract.safety()) {
        (Some(ident), None, _) => cx.error_spanned_by(
            ident,
            format!("unknown dedupe scope `{ident}`; expected `command`, `connector` or `egress`"),
        ),
        // Its proposals carry a destination and tenant; another scope would quarantine
        // every one of them at run time.
        (Some(ident), Some(kind), Some(Safety::WriteExternalSideEffect))
            if kind != DedupeKind::Egress =>
        {
            cx.error_spanned_by(
                ident,
                format!("command `{name}` has an external side effect, deduplicated by its destination and tenant: write `dedupe = egress`, or leave `dedupe` out (it is inferred)"),
            );
        }
        _ => {}
    }
    let args = &contract.args;
    match (contract.safety(), &args.compensation, args.irreversible) {
        (Some(Safety::WriteExternalSideEffect), None, None) => cx.error_spanned_by(
            args.safety.as_ref(),
            format!("command `{name}` has an external side effect and needs a compensation hook: add `compensation = <the command that undoes it>`, or `irreversible` when nothing can undo it (the gateway then holds it before dispatch)"),
        ),
        (Some(Safety::WriteExternalSideEffect), Some(path), Some(_)) => cx.error_spanned_by(
            path,
            "a command with a compensation is not irreversible; remove `irreversible` or `compensation`",
        ),
        (Some(Safety::Read | Safety::WriteInternal), Some(path), _) => cx.error_spanned_by(
            path,
            "only `WRITE_EXTERNAL_SIDE_EFFECT` commands take a compensation; remove `compensation`",
        ),
        (Some(Safety::Read | Safety::WriteInternal), None, Some(span)) => cx.error_spanned_by(
            quote::quote_spanned!(span=> irreversible),
            "only `WRITE_EXTERNAL_SIDE_EFFECT` commands can be irreversible; remove `irreversible`",
        ),
        _ => {}
    }
}

pub fn pack(pack: &Pack, cx: &mut Ctxt) {
    let name = &pack.item.ident;
    let crate_name = &pack.owning.crate_name;
    let pack_id = match &pack.owning.owner {
        Ok(Owner::Pack { pack_id }) => Some(pack_id),
        _ => {
            cx.error_spanned_by(
                name,
                format!("`#[pack]` declares the manifest of a pack crate, and `{crate_name}` is not one; put it in the crate `pack-<id>`"),
            );
            None
        }
    };
    match (&pack.args.id, pack_id) {
        (None, _) => cx.error_spanned_by(name, "the pack needs its id: add `id = \"...\"`"),
        (Some(id), Some(pack_id)) if id.value() != *pack_id => cx.error_spanned_by(
            id,
            format!("this crate is pack `{pack_id}`; set `id = \"{pack_id}\"` (the id comes from the crate name)"),
        ),
        _ => {}
    }
    let crate_version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    if let Some(version) = &pack.args.version
        && version.value() != crate_version
    {
        cx.error_spanned_by(
            version,
            format!("the pack version must be the crate version `{crate_version}`; set `version = \"{crate_version}\"`"),
        );
    }
    for contract in &pack.args.contracts {
        let value = contract.value();
        if !(value.starts_with("ops-contract-") || value.starts_with("ops-shared-")) {
            cx.error_spanned_by(
                contract,
                format!("`{value}` is not a contract module; list `ops-contract-<id>` and `ops-shared-<pkg>` crates"),
            );
        }
    }
    for migration in &pack.args.migrations {
        if let Err(reason) = migration_inside_crate(&migration.value()) {
            cx.error_spanned_by(migration, reason);
        }
    }
    let unit = matches!(&pack.item.data, Data::Struct(data) if matches!(data.fields, Fields::Unit));
    if !unit || !pack.item.generics.params.is_empty() {
        cx.error_spanned_by(
            name,
            "`#[pack]` goes on a unit struct, e.g. `pub struct IncidentsPack;`",
        );
    }
}

/// A migration is compiled into the pack, so its path must name a `.sql` file of the pack's
/// own `migrations/` folder: relative, no `..`, and (links resolved) still inside it.
fn migration_inside_crate(path: &str) -> Result<(), String> {
    use std::path::{Component, Path};
    let fix = "list it as `migrations/<name>.sql`, a file of this crate's `migrations/` folder";
    let relative = Path::new(path);
    let plain = relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)));
    let mut parts = relative.components();
    let in_folder = parts.next() == Some(Component::Normal("migrations".as_ref()));
    if !plain || !in_folder || parts.count() != 1 || !path.ends_with(".sql") {
        return Err(format!(
            "migration `{path}` is not a file of this crate's `migrations/` folder; {fix}"
        ));
    }
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return Ok(());
    };
    let folder = Path::new(&manifest_dir).join("migrations");
    match (
        folder.canonicalize(),
        folder
            .join(relative.file_name().unwrap_or_default())
            .canonicalize(),
    ) {
        (Ok(folder), Ok(file)) if !file.starts_with(&folder) => Err(format!(
            "migration `{path}` is a link to {}, outside this crate's `migrations/` folder; {fix}",
            file.display()
        )),
        _ => Ok(()),
    }
}
