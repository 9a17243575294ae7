//! The type registry: every `#[event]`, `#[command]` and `#[pack]` linked into the binary,
//! gathered once through `inventory`. Building it rejects duplicates (naming both places),
//! gaps in version chains and packs that name contracts which are not linked.

pub use crate::contract::PieceIdentity;
use crate::envelope::{CommandEnvelope, CommandRequest, EnvelopeError};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use crate::contract::{DedupeKind, Kind, SafetyClass, TypedEvent, UpcastError, Visibility};
use crate::pack::{PackDescriptor, PackManifest, ProvidedType};

/// What `#[event]` and `#[command]` submit for each type version.
#[derive(Debug)]
pub struct TypeDescriptor {
    pub name: &'static str,
    pub version: u32,
    pub kind: Kind,
    pub visibility: Visibility,
    pub safety: Option<SafetyClass>,
    pub dedupe: Option<DedupeKind>,
    /// The type name of the compensating command, for external side effects.
    pub compensation: Option<&'static str>,
    /// The name this type had before, stated on its latest version; stored events under the
    /// old name read as this type.
    pub renamed_from: Option<&'static str>,
    pub rust_type: &'static str,
    /// `core::any::type_name` of the Rust type: its first segment is the crate rustc really
    /// compiled it in, which no build script or environment override can change.
    pub type_path: fn() -> &'static str,
    pub crate_name: &'static str,
    pub crate_version: &'static str,
    pub file: &'static str,
    pub line: u32,
    /// JSON Schema (Draft 2020-12) of the payload.
    pub schema: fn() -> Value,
    /// Whether a JSON payload decodes as this type version; the error says where it does not.
    pub check_payload: fn(&Value) -> Result<(), String>,
    /// Reads a payload of `version - 1` as this version.
    pub upcast_from_previous: Option<fn(Value) -> Result<Value, UpcastError>>,
}

inventory::collect!(TypeDescriptor);

impl TypeDescriptor {
    pub fn location(&self) -> Location {
        Location {
            rust_type: self.rust_type,
            file: self.file,
            line: self.line,
        }
    }
}

/// Where a type or pack was declared, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub rust_type: &'static str,
    pub file: &'static str,
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` at {}:{}", self.rust_type, self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryProblem {
    #[error(
        "type `{name}` version {version} is declared twice: by {first} and by {second}; rename one of them"
    )]
    DuplicateType {
        name: &'static str,
        version: u32,
        first: Location,
        second: Location,
    },
    #[error(
        "type `{name}` has version {present} but no version {missing}; declare every version from 1 with its upcaster"
    )]
    MissingVersion {
        name: &'static str,
        present: u32,
        missing: u32,
    },
    #[error(
        "type `{name}` ({renamed}) is renamed from `{old}`, but `{old}` is still declared by {still}; remove the old declaration or `renamed_from`"
    )]
    RenamedTypeStillDeclared {
        name: &'static str,
        old: &'static str,
        renamed: Location,
        still: Location,
    },
    #[error("pack `{id}` is declared twice: by {first} and by {second}")]
    DuplicatePack {
        id: &'static str,
        first: Location,
        second: Location,
    },
    #[error("pack `{id}` version `{version}` is not semver: {reason}")]
    PackVersion {
        id: &'static str,
        version: &'static str,
        reason: String,
    },
    #[error(
        "pack `{id}` lists contract `{contract}`, but no type of it is linked; add `{contract}` to the pack's dependencies or remove it from `contracts`"
    )]
    MissingContract {
        id: &'static str,
        contract: &'static str,
    },
    #[error(
        "`{name}` claims crate `{claimed}`, but it was compiled in crate `{compiled}` ({location}); the owner of a type is the crate that compiles it, so define it in its owner's crate and remove any override of `CARGO_PKG_NAME`"
    )]
    ForeignOwner {
        name: &'static str,
        claimed: &'static str,
        compiled: String,
        location: Location,
    },
    #[error(
        "{piece} is installed twice: by `{first}` and by `{second}`; a connector id or reconciler name is one piece's across packs, any other name one piece's within its pack, so rename one"
    )]
    PieceClaimedTwice {
        piece: String,
        first: String,
        second: String,
    },
    #[error(
        "{owner} is claimed by two crates: `{crate_name}` at {first} and at {second}; a host links one crate per pack and contract, so remove the other from its dependencies"
    )]
    ClaimedTwice {
        owner: String,
        crate_name: &'static str,
        first: String,
        second: String,
    },
    #[error(
        "{piece} claims {claim}, but rustc compiled {what} as `{compiled}`{detail}; identity is the Rust type and the crate that compiles it: declare types with `#[event]`/`#[command]`, the pack with `#[pack]`, and install the piece from its own pack's crate with the ops macros"
    )]
    ForgedIdentity {
        piece: String,
        claim: String,
        what: &'static str,
        compiled: String,
        /// What the registry knows under the claimed name, when that is the point.
        detail: String,
    },
    #[error(
        "{reader} of pack `{pack}` reads `{type_name}`, which pack `{pack}` may not see; a pack reads its own types, public core types and public types of the contract modules it lists: ask the owner to publish it in its contract crate and list that crate in `#[pack(contracts = [...])]`"
    )]
    InvisibleType {
        reader: String,
        pack: &'static str,
        type_name: &'static str,
    },
}

/// Every problem found while building the registry, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the type registry is inconsistent:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RegistryError {
    pub problems: Vec<RegistryProblem>,
}

pub struct Registry {
    types: BTreeMap<(&'static str, u32), &'static TypeDescriptor>,
    packs: BTreeMap<&'static str, &'static PackDescriptor>,
    /// Each type version's schema, generated on first use: readers that walk schemas per
    /// event (sealing, opening, redacting) must not generate one per event.
    schemas: BTreeMap<(&'static str, u32), OnceLock<Schema>>,
}

/// A generated schema and whether any field in it is marked sensitive.
struct Schema {
    document: serde_json::Value,
    sensitive: bool,
}

/// The registry of this binary, built on first use, with every installed piece checked: its
/// identity by its Rust types, and what it reads against what its pack may see. The host
/// refuses to start otherwise. Only the core asks for it (a [`crate::CoreToken`]): it names
/// every type by its string.
pub fn registry(_core: crate::CoreToken) -> Result<&'static Registry, &'static RegistryError> {
    static REGISTRY: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let registry = Registry::build(
                inventory::iter::<TypeDescriptor>(),
                inventory::iter::<PackDescriptor>(),
            )?;
            let mut problems = registry.forged_identities(&installed_identities());
            problems.extend(registry.invisible_reads());
            if problems.is_empty() {
                Ok(registry)
            } else {
                Err(RegistryError { problems })
            }
        })
        .as_ref()
}

/// The identity of every piece installed in this binary.
fn installed_identities() -> Vec<PieceIdentity> {
    let core = crate::CoreToken::INTERNAL;
    let projections = crate::projection::installed(core)
        .into_iter()
        .map(|p| p.identity());
    let handlers = crate::handler::installed(core)
        .into_iter()
        .map(|h| h.identity());
    let reactions = crate::reaction::installed(core)
        .into_iter()
        .map(|r| r.identity());
    let connectors = crate::connector::installed(core)
        .into_iter()
        .map(|c| c.identity());
    projections
        .chain(handlers)
        .chain(reactions)
        .chain(connectors)
        .chain(crate::connector::reconciler_identities())
        .collect()
}

/// Names that two installed pieces claim: a connector id or reconciler name anywhere (it
/// keys cursors, leases and `source_ref`s across packs), any other piece's name within its
/// pack. A second claim would read or move what the first one owns.
fn claimed_twice(pieces: &[PieceIdentity]) -> Vec<RegistryProblem> {
    let mut seen: BTreeMap<(Option<&str>, &str), &PieceIdentity> = BTreeMap::new();
    let mut problems = Vec::new();
    for piece in pieces {
        let global = piece.piece.starts_with("connector ") || piece.claimed_pack.is_none();
        let key = (
            if global { None } else { piece.claimed_pack },
            piece.piece.as_str(),
        );
        if let Some(first) = seen.insert(key, piece) {
            problems.push(RegistryProblem::PieceClaimedTwice {
                piece: piece.piece.clone(),
                first: first.rust.path().to_owned(),
                second: piece.rust.path().to_owned(),
            });
        }
    }
    problems
}

/// The Rust crates that may define type `name`: `pack_<id>` and `ops_contract_<id>` for
/// `pack.<id>.*`, `ops_shared_<pkg>` for `shared.<pkg>.*`, `ops_core` for `core.*`.
fn owning_crates(name: &str) -> Vec<String> {
    let segment = |rest: &str| rest.split('.').next().unwrap_or_default().to_owned();
    if let Some(rest) = name.strip_prefix("pack.") {
        let id = segment(rest);
        vec![format!("pack_{id}"), format!("ops_contract_{id}")]
    } else if let Some(rest) = name.strip_prefix("shared.") {
        vec![format!("ops_shared_{}", segment(rest))]
    } else {
        vec!["ops_core".to_owned()]
    }
}

/// The folder of the crate a source file belongs to: what comes before its `src/`.
fn crate_folder(file: &str) -> &str {
    match file.rfind("src/") {
        Some(at) => file[..at].trim_end_matches('/'),
        None => file,
    }
}

impl Registry {
    pub fn build(
        types: impl IntoIterator<Item = &'static TypeDescriptor>,
        packs: impl IntoIterator<Item = &'static PackDescriptor>,
    ) -> Result<Self, RegistryError> {
        let mut problems = Vec::new();
        let mut by_key: BTreeMap<(&'static str, u32), &'static TypeDescriptor> = BTreeMap::new();
        // Sorted by location so the "first" of a duplicate does not depend on link order.
        let mut types: Vec<_> = types.into_iter().collect();
        types.sort_by_key(|t| (t.file, t.line, t.rust_type));
        for descriptor in types {
            if let Some(first) = by_key.insert((descriptor.name, descriptor.version), descriptor) {
                problems.push(RegistryProblem::DuplicateType {
                    name: descriptor.name,
                    version: descriptor.version,
                    first: first.location(),
                    second: descriptor.location(),
                });
            }
        }
        let mut latest: BTreeMap<&'static str, u32> = BTreeMap::new();
        for &(name, version) in by_key.keys() {
            let entry = latest.entry(name).or_default();
            *entry = (*entry).max(version);
        }
        for (&name, &present) in &latest {
            for missing in (1..present).filter(|v| !by_key.contains_key(&(name, *v))) {
                problems.push(RegistryProblem::MissingVersion {
                    name,
                    present,
                    missing,
                });
            }
        }
        for descriptor in by_key.values() {
            if let Some(old) = descriptor.renamed_from
                && let Some(still) = by_key.values().find(|t| t.name == old)
            {
                problems.push(RegistryProblem::RenamedTypeStillDeclared {
                    name: descriptor.name,
                    old,
                    renamed: descriptor.location(),
                    still: still.location(),
                });
            }
        }
        // Identity: the crate rustc compiled a type in must own its name, and be the crate
        // Cargo's environment named; and each pack's crate and contract crate is one crate.
        let mut folders: BTreeMap<String, (&'static str, &'static str)> = BTreeMap::new();
        for descriptor in by_key.values() {
            let compiled = crate::contract::crate_of((descriptor.type_path)());
            if !owning_crates(descriptor.name).iter().any(|c| c == compiled)
                || descriptor.crate_name.replace('-', "_") != compiled
            {
                problems.push(RegistryProblem::ForeignOwner {
                    name: descriptor.name,
                    claimed: descriptor.crate_name,
                    compiled: compiled.to_owned(),
                    location: descriptor.location(),
                });
                continue;
            }
            let folder = crate_folder(descriptor.file);
            match folders.get(compiled) {
                Some((first, _)) if *first != folder => {
                    problems.push(RegistryProblem::ClaimedTwice {
                        owner: format!("crate `{compiled}`"),
                        crate_name: descriptor.crate_name,
                        first: (*first).to_owned(),
                        second: folder.to_owned(),
                    });
                }
                Some(_) => {}
                None => {
                    folders.insert(compiled.to_owned(), (folder, descriptor.crate_name));
                }
            }
        }
        let mut by_id: BTreeMap<&'static str, &'static PackDescriptor> = BTreeMap::new();
        for pack in packs {
            let compiled = crate::contract::crate_of((pack.type_path)());
            if compiled != format!("pack_{}", pack.id)
                || pack.crate_name.replace('-', "_") != compiled
            {
                problems.push(RegistryProblem::ForeignOwner {
                    name: pack.id,
                    claimed: pack.crate_name,
                    compiled: compiled.to_owned(),
                    location: pack_location(pack),
                });
            } else if let Some((first, _)) = folders.get(compiled)
                && *first != crate_folder(pack.file)
            {
                problems.push(RegistryProblem::ClaimedTwice {
                    owner: format!("pack `{}`", pack.id),
                    crate_name: pack.crate_name,
                    first: (*first).to_owned(),
                    second: crate_folder(pack.file).to_owned(),
                });
            }
            if let Err(error) = semver::Version::parse(pack.version) {
                problems.push(RegistryProblem::PackVersion {
                    id: pack.id,
                    version: pack.version,
                    reason: error.to_string(),
                });
            }
            for &contract in pack.contracts {
                if !by_key.values().any(|t| t.crate_name == contract) {
                    problems.push(RegistryProblem::MissingContract {
                        id: pack.id,
                        contract,
                    });
                }
            }
            if let Some(first) = by_id.insert(pack.id, pack) {
                problems.push(RegistryProblem::DuplicatePack {
                    id: pack.id,
                    first: pack_location(first),
                    second: pack_location(pack),
                });
            }
        }
        if problems.is_empty() {
            Ok(Registry {
                schemas: by_key.keys().map(|key| (*key, OnceLock::new())).collect(),
                types: by_key,
                packs: by_id,
            })
        } else {
            Err(RegistryError { problems })
        }
    }

    /// Every type version, sorted by name then version.
    pub fn types(&self) -> impl Iterator<Item = &'static TypeDescriptor> + '_ {
        self.types.values().copied()
    }

    pub fn get(&self, name: &str, version: u32) -> Option<&'static TypeDescriptor> {
        self.types
            .range((name, version)..=(name, version))
            .next()
            .map(|(_, t)| *t)
    }

    /// The JSON Schema of `name` v`version`, generated once per registry.
    pub fn schema(&self, name: &str, version: u32) -> Option<&serde_json::Value> {
        self.generated(name, version).map(|schema| &schema.document)
    }

    /// Whether `name` v`version` has a field marked `#[sensitive]`, anywhere inside it.
    pub fn has_sensitive_fields(&self, name: &str, version: u32) -> bool {
        self.generated(name, version)
            .is_some_and(|schema| schema.sensitive)
    }

    fn generated(&self, name: &str, version: u32) -> Option<&Schema> {
        let descriptor = self.get(name, version)?;
        let cell = self.schemas.get(&(descriptor.name, descriptor.version))?;
        Some(cell.get_or_init(|| {
            let document = (descriptor.schema)();
            Schema {
                sensitive: crate::redaction::marks_sensitive(&document),
                document,
            }
        }))
    }

    /// The current (highest) version of `name`.
    pub fn latest(&self, name: &str) -> Option<&'static TypeDescriptor> {
        self.types
            .range((name, 0)..=(name, u32::MAX))
            .next_back()
            .map(|(_, descriptor)| *descriptor)
    }

    /// The current name of a type stored under `name`: itself, or the type renamed from it.
    pub fn current_name(&self, name: &str) -> Option<&'static str> {
        if let Some(descriptor) = self.latest(name) {
            return Some(descriptor.name);
        }
        self.types
            .values()
            .find(|descriptor| descriptor.renamed_from == Some(name))
            .map(|descriptor| descriptor.name)
    }

    /// Reads a stored payload of `name` at `version` as the current version, through every
    /// upcaster in between. Returns the current version and the payload.
    pub fn upcast_to_latest(
        &self,
        name: &str,
        version: u32,
        mut payload: Value,
    ) -> Result<(u32, Value), UpcastError> {
        let latest = self.latest(name).ok_or_else(|| UpcastError::UnknownType {
            type_name: name.to_owned(),
        })?;
        if self.get(name, version).is_none() {
            return Err(UpcastError::UnknownVersion {
                type_name: name.to_owned(),
                version,
            });
        }
        for next in version + 1..=latest.version {
            let step = self
                .get(name, next)
                .and_then(|descriptor| descriptor.upcast_from_previous)
                .ok_or_else(|| UpcastError::UnknownVersion {
                    type_name: name.to_owned(),
                    version: next,
                })?;
            payload = step(payload)?;
        }
        Ok((latest.version, payload))
    }

    /// Every claim of an installed piece that its Rust types do not back: a pack type that is
    /// not the `#[pack]` type of the pack it names, a piece compiled outside that pack's
    /// crate, a contract type whose name is registered for another Rust type, a reconciler
    /// outside a contract or shared crate or comparing a type that is not public.
    pub fn forged_identities(&self, pieces: &[PieceIdentity]) -> Vec<RegistryProblem> {
        let mut problems = claimed_twice(pieces);
        let mut forged =
            |piece: &PieceIdentity, claim: String, what, compiled: &str, detail: String| {
                problems.push(RegistryProblem::ForgedIdentity {
                    piece: piece.piece.clone(),
                    claim,
                    what,
                    compiled: compiled.to_owned(),
                    detail,
                })
            };
        for piece in pieces {
            match (piece.claimed_pack, piece.pack) {
                (Some(pack_id), Some(pack_type)) => {
                    let genuine = self
                        .packs
                        .get(pack_id)
                        .is_some_and(|pack| (pack.type_path)() == pack_type.path());
                    if !genuine {
                        forged(
                            piece,
                            format!("pack `{pack_id}`"),
                            "its pack type",
                            pack_type.path(),
                            String::new(),
                        );
                    }
                    if piece.rust.crate_name() != format!("pack_{pack_id}") {
                        forged(
                            piece,
                            format!("pack `{pack_id}`"),
                            "it",
                            piece.rust.path(),
                            String::new(),
                        );
                    }
                }
                _ => {
                    let owner = piece.rust.crate_name();
                    if !(owner.starts_with("ops_contract_") || owner.starts_with("ops_shared_")) {
                        forged(
                            piece,
                            "a contract or shared crate".to_owned(),
                            "it",
                            piece.rust.path(),
                            String::new(),
                        );
                    }
                }
            }
            for named in &piece.types {
                match self.get(named.name, named.version) {
                    Some(descriptor) if (descriptor.type_path)() == named.rust.path() => {
                        if piece.claimed_pack.is_none()
                            && descriptor.visibility != Visibility::Public
                        {
                            forged(
                                piece,
                                format!("`{}`, a private type,", named.name),
                                "a reader of public types",
                                piece.rust.path(),
                                String::new(),
                            );
                        }
                    }
                    Some(descriptor) => forged(
                        piece,
                        format!("`{}` v{}", named.name, named.version),
                        "the type it names",
                        named.rust.path(),
                        format!(
                            ", and that name is registered for `{}`",
                            (descriptor.type_path)()
                        ),
                    ),
                    None => forged(
                        piece,
                        format!("`{}` v{}", named.name, named.version),
                        "the type it names",
                        named.rust.path(),
                        ", which no `#[event]` or `#[command]` registered".to_owned(),
                    ),
                }
            }
        }
        problems
    }

    /// Whether `event` was made from the Rust type registered under its name and version: a
    /// hand-written `Event` impl (in a build with the sandbox off) can claim any name, never
    /// the registered type, so what it states is refused before it is stored.
    pub fn check_typed(&self, event: &TypedEvent) -> Result<(), String> {
        let made_from = event.rust_type().path();
        match self.get(event.event_type(), event.version()) {
            Some(descriptor) if (descriptor.type_path)() == made_from => Ok(()),
            Some(descriptor) => Err(format!(
                "`{}` v{} was made from `{made_from}`, not from `{}`, the type `#[event]` registered under that name; only that type can state it",
                event.event_type(),
                event.version(),
                (descriptor.type_path)()
            )),
            None => Err(format!(
                "`{}` v{} (made from `{made_from}`) is not a type registered in this build",
                event.event_type(),
                event.version()
            )),
        }
    }

    /// What installed projections and reactions read that their pack may not see, judged by
    /// the registered descriptors (a hand-written `Contract` impl cannot claim to be public).
    pub fn invisible_reads(&self) -> Vec<RegistryProblem> {
        let mut problems = Vec::new();
        for projection in crate::projection::installed(crate::CoreToken::INTERNAL) {
            for event in projection.event_types() {
                if !self.visible_to(projection.pack_id(), event.name()) {
                    problems.push(RegistryProblem::InvisibleType {
                        reader: format!("projection `{}`", projection.name()),
                        pack: projection.pack_id(),
                        type_name: event.name(),
                    });
                }
            }
        }
        for reaction in crate::reaction::installed(crate::CoreToken::INTERNAL) {
            if !self.visible_to(reaction.pack_id(), reaction.event_type()) {
                problems.push(RegistryProblem::InvisibleType {
                    reader: format!("a reaction to `{}`", reaction.event_type()),
                    pack: reaction.pack_id(),
                    type_name: reaction.event_type(),
                });
            }
        }
        problems
    }

    /// Whether pack `pack_id` may see events stored as `name`, judged by the registered
    /// descriptor of the type (not by what a type claims of itself): its own types, public
    /// core types, and public types of the contract modules its manifest lists.
    pub fn visible_to(&self, pack_id: &str, name: &str) -> bool {
        let Some(descriptor) = self.current_name(name).and_then(|name| self.latest(name)) else {
            return false;
        };
        let contracts = self
            .packs
            .get(pack_id)
            .map_or(&[][..], |pack| pack.contracts);
        crate::contract::visible_to(pack_id, contracts, descriptor.name, descriptor.visibility)
    }

    pub fn packs(&self) -> impl Iterator<Item = &'static PackDescriptor> + '_ {
        self.packs.values().copied()
    }

    /// The manifest of an installed pack: its types are those of `pack.<id>.*`, whether
    /// defined in the pack crate or its contract crate.
    pub fn manifest(&self, pack: &PackDescriptor) -> PackManifest {
        let namespace = format!("pack.{}.", pack.id);
        let provides = self
            .types()
            .filter(|t| t.name.starts_with(&namespace))
            .map(|t| ProvidedType {
                name: t.name.to_owned(),
                version: t.version,
                kind: t.kind,
                visibility: t.visibility,
            })
            .collect();
        let mut contracts: Vec<String> = pack.contracts.iter().map(|c| (*c).to_owned()).collect();
        contracts.sort();
        PackManifest {
            id: pack.id.to_owned(),
            version: semver::Version::parse(pack.version)
                .expect("checked when the registry was built"),
            crate_name: pack.crate_name.to_owned(),
            contracts,
            provides,
            migrations_prefix: format!("pack_{}_", pack.id),
        }
    }
}

fn pack_location(pack: &PackDescriptor) -> Location {
    Location {
        rust_type: pack.rust_type,
        file: pack.file,
        line: pack.line,
    }
}

/// Envelopes built from a registry entry: kept here, so the envelope knows nothing of the
/// registry.
impl CommandEnvelope {
    /// A command whose type is known only at run time, by its registry entry (an
    /// operator's `ops-host commands submit`, a jailed reaction's proposal): the dedupe
    /// scope must be of the kind it declares, as [`Self::new`] ensures at compile time.
    /// `decodes` says whether the payload decodes as `descriptor`'s type: the caller asks
    /// where that type's code runs (its `Deserialize` is its crate's code, which the
    /// runtime runs in the crate's jailed runner).
    pub fn of_descriptor(
        _core: crate::CoreToken,
        descriptor: &crate::registry::TypeDescriptor,
        payload: Value,
        decodes: Result<(), String>,
        request: CommandRequest,
    ) -> Result<Self, EnvelopeError> {
        let not_a = |message: String| EnvelopeError::NotOfType {
            type_name: descriptor.name.to_owned(),
            message,
        };
        let (crate::contract::Kind::Command, Some(expected)) = (descriptor.kind, descriptor.dedupe)
        else {
            return Err(not_a("it is not a command".to_owned()));
        };
        crate::envelope::check_dedupe(descriptor.name, expected, &request)?;
        decodes.map_err(not_a)?;
        Ok(CommandEnvelope::assemble(
            descriptor.name,
            descriptor.version,
            payload,
            request,
        ))
    }
}

impl TypedEvent {
    /// An event a jailed piece of pack code stated, as the host rebuilds it from what crossed
    /// the boundary: the name and version must be registered, and the type is the one
    /// registered for them (what the runner claims of its types is not believed; the
    /// runtime checks the pack owns or may state the type, and the payload decodes, before
    /// it stores the event).
    pub fn registered(
        _core: crate::CoreToken,
        descriptor: &TypeDescriptor,
        payload: serde_json::Value,
    ) -> Self {
        TypedEvent {
            event_type: descriptor.name,
            version: descriptor.version,
            rust: crate::contract::RustType {
                path: descriptor.type_path,
            },
            payload,
            effective_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_schema() -> Value {
        json!({})
    }

    const fn descriptor(name: &'static str, version: u32, line: u32) -> TypeDescriptor {
        TypeDescriptor {
            name,
            version,
            kind: Kind::Event,
            visibility: Visibility::Public,
            safety: None,
            dedupe: None,
            compensation: None,
            renamed_from: None,
            rust_type: "fixture::Opened",
            type_path: || "ops_contract_fixture::Opened",
            crate_name: "ops-contract-fixture",
            crate_version: "0.1.0",
            file: "fixture.rs",
            line,
            schema: no_schema,
            check_payload: |_| Ok(()),
            upcast_from_previous: None,
        }
    }

    static FIRST: TypeDescriptor = descriptor("pack.fixture.incident.Opened", 1, 10);
    static SECOND: TypeDescriptor = descriptor("pack.fixture.incident.Opened", 1, 20);
    static THIRD: TypeDescriptor = descriptor("pack.fixture.incident.Opened", 3, 30);

    #[test]
    fn duplicate_names_are_rejected_with_both_locations() {
        let error = Registry::build([&FIRST, &SECOND], [])
            .err()
            .expect("duplicate accepted");
        let message = error.to_string();
        assert!(
            message.contains("fixture.rs:10") && message.contains("fixture.rs:20"),
            "{message}"
        );
        assert!(matches!(
            error.problems[0],
            RegistryProblem::DuplicateType { version: 1, .. }
        ));
    }

    #[test]
    fn version_gaps_are_rejected() {
        let error = Registry::build([&FIRST, &THIRD], [])
            .err()
            .expect("gap accepted");
        assert_eq!(
            error.problems,
            vec![RegistryProblem::MissingVersion {
                name: "pack.fixture.incident.Opened",
                present: 3,
                missing: 2
            }]
        );
    }

    static RENAMED: TypeDescriptor = TypeDescriptor {
        renamed_from: Some("pack.fixture.incident.Opened"),
        ..descriptor("pack.fixture.incident.Raised", 1, 40)
    };

    #[test]
    fn old_names_resolve_to_the_renamed_type() {
        let registry = Registry::build([&RENAMED], []).expect("registry");
        assert_eq!(
            registry.current_name("pack.fixture.incident.Opened"),
            Some("pack.fixture.incident.Raised")
        );
        assert_eq!(
            registry.current_name("pack.fixture.incident.Raised"),
            Some("pack.fixture.incident.Raised")
        );
        assert_eq!(registry.current_name("pack.fixture.incident.Closed"), None);
    }

    #[test]
    fn a_rename_must_retire_the_old_declaration() {
        let error = Registry::build([&FIRST, &RENAMED], [])
            .err()
            .expect("rename beside its old name accepted");
        let message = error.to_string();
        assert!(
            message.contains("renamed from `pack.fixture.incident.Opened`")
                && message.contains("fixture.rs:10"),
            "{message}"
        );
    }

    #[test]
    fn packs_must_link_the_contracts_they_list() {
        static PACK: PackDescriptor = PackDescriptor {
            id: "fixture",
            version: "0.1.0",
            crate_name: "pack-fixture",
            contracts: &["ops-contract-fixture", "ops-contract-missing"],
            migrations: &[],
            code_hash: "b3_fixture",
            rust_type: "fixture::FixturePack",
            type_path: || "pack_fixture::FixturePack",
            file: "pack.rs",
            line: 1,
        };
        let error = Registry::build([&FIRST], [&PACK])
            .err()
            .expect("missing contract accepted");
        assert_eq!(
            error.problems,
            vec![RegistryProblem::MissingContract {
                id: "fixture",
                contract: "ops-contract-missing"
            }]
        );
    }

    static STOLEN: TypeDescriptor = TypeDescriptor {
        type_path: || "ops_contract_thief::Opened",
        ..descriptor("pack.fixture.incident.Stolen", 1, 50)
    };
    static RENAMED_PACKAGE: TypeDescriptor = TypeDescriptor {
        crate_name: "ops-contract-other",
        ..descriptor("pack.fixture.incident.Misnamed", 1, 60)
    };

    #[test]
    fn a_type_compiled_outside_its_owners_crate_is_refused() {
        let error = Registry::build([&STOLEN, &RENAMED_PACKAGE], [])
            .err()
            .expect("a borrowed identity accepted");
        let message = error.to_string();
        assert!(
            message.contains("`pack.fixture.incident.Stolen` claims crate `ops-contract-fixture`, but it was compiled in crate `ops_contract_thief`"),
            "{message}"
        );
        assert!(
            message.contains("`pack.fixture.incident.Misnamed` claims crate `ops-contract-other`, but it was compiled in crate `ops_contract_fixture`"),
            "{message}"
        );
    }

    static ELSEWHERE: TypeDescriptor = TypeDescriptor {
        file: "/home/someone/.cargo/registry/ops-contract-fixture-0.2.0/src/lib.rs",
        ..descriptor("pack.fixture.incident.Closed", 1, 70)
    };
    static HERE: TypeDescriptor = TypeDescriptor {
        file: "contracts/fixture/src/lib.rs",
        ..descriptor("pack.fixture.incident.Reopened", 1, 80)
    };
    static HERE_TOO: TypeDescriptor = TypeDescriptor {
        file: "contracts/fixture/src/v1.rs",
        ..descriptor("pack.fixture.incident.Paused", 1, 90)
    };

    #[test]
    fn a_crate_claimed_by_two_folders_is_refused_naming_both() {
        assert!(Registry::build([&HERE, &HERE_TOO], []).is_ok());
        let error = Registry::build([&HERE, &ELSEWHERE], [])
            .err()
            .expect("two crates of one name accepted");
        let message = error.to_string();
        assert!(
            message.contains("crate `ops_contract_fixture` is claimed by two crates")
                && message.contains("contracts/fixture")
                && message.contains("/home/someone/.cargo/registry/ops-contract-fixture-0.2.0"),
            "{message}"
        );
    }

    static PRIVATE: TypeDescriptor = TypeDescriptor {
        visibility: Visibility::Private,
        crate_name: "pack-fixture",
        type_path: || "pack_fixture::Noted",
        ..descriptor("pack.fixture.triage.Noted", 1, 100)
    };

    #[test]
    fn what_a_pack_sees_is_judged_by_the_registered_descriptor() {
        static READER: PackDescriptor = PackDescriptor {
            id: "reader",
            version: "0.1.0",
            crate_name: "pack-reader",
            contracts: &["ops-contract-fixture"],
            migrations: &[],
            code_hash: "b3_reader",
            rust_type: "reader::ReaderPack",
            type_path: || "pack_reader::ReaderPack",
            file: "packs/reader/src/lib.rs",
            line: 1,
        };
        let registry = Registry::build([&FIRST, &PRIVATE], [&READER]).expect("registry");
        assert!(registry.visible_to("reader", "pack.fixture.incident.Opened"));
        assert!(!registry.visible_to("reader", "pack.fixture.triage.Noted"));
        assert!(registry.visible_to("fixture", "pack.fixture.triage.Noted"));
        assert!(!registry.visible_to("other", "pack.fixture.incident.Opened"));
        assert!(!registry.visible_to("reader", "pack.unknown.incident.Opened"));
    }
}
