//! Edits of `Cargo.toml` files that keep everything else as it was written (comments,
//! order, layout), through `toml_edit`: adding a pack's lines (`cargo ops new-pack`) and
//! taking them out again (the delete-pack acceptance).

use std::path::{Path, PathBuf};

use anyhow::Context;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

pub struct Manifest {
    path: PathBuf,
    document: DocumentMut,
}

/// A folder as a manifest names it: relative, with `/`.
fn folder_text(folder: &Path) -> String {
    folder
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl Manifest {
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let document = text
            .parse::<DocumentMut>()
            .with_context(|| format!("{}: not valid TOML", path.display()))?;
        Ok(Manifest {
            path: path.to_owned(),
            document,
        })
    }

    pub fn write(&self) -> anyhow::Result<()> {
        std::fs::write(&self.path, self.document.to_string())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn workspace_table(&mut self) -> anyhow::Result<&mut Table> {
        self.document
            .get_mut("workspace")
            .and_then(Item::as_table_mut)
            .with_context(|| format!("{}: no `[workspace]` table", self.path.display()))
    }

    fn members(&mut self) -> anyhow::Result<&mut Array> {
        let path = self.path.display().to_string();
        let workspace = self.workspace_table()?;
        if !workspace.contains_key("members") {
            workspace.insert("members", Item::Value(Value::Array(Array::new())));
        }
        workspace["members"]
            .as_array_mut()
            .with_context(|| format!("{path}: `workspace.members` is not an array"))
    }

    /// Adds `folder` to `workspace.members` unless a member or a `dir/*` glob names it.
    pub fn add_member(&mut self, folder: &Path) -> anyhow::Result<()> {
        let text = folder_text(folder);
        let members = self.members()?;
        let named = members.iter().filter_map(Value::as_str).any(|member| {
            member == text
                || member
                    .strip_suffix("/*")
                    .is_some_and(|dir| Path::new(&text).parent() == Some(Path::new(dir)))
        });
        if !named {
            members.push_formatted(Value::from(text).decorated("\n    ", ""));
            members.set_trailing(",\n");
            members.set_trailing_comma(false);
        }
        Ok(())
    }

    /// Takes `folder` out of `workspace.members` (a glob that covers it stays).
    pub fn remove_member(&mut self, folder: &Path) {
        let text = folder_text(folder);
        let Ok(members) = self.members() else {
            return;
        };
        members.retain(|member| member.as_str() != Some(text.as_str()));
    }

    /// `name = { path = "<folder>", version = "<version>" }` in `[workspace.dependencies]`.
    pub fn add_workspace_dependency(
        &mut self,
        name: &str,
        folder: &Path,
        version: &str,
    ) -> anyhow::Result<()> {
        let mut line = InlineTable::new();
        line.insert("path", Value::from(folder_text(folder)));
        line.insert("version", Value::from(version));
        self.set_workspace_dependency(name, line)
    }

    fn set_workspace_dependency(&mut self, name: &str, line: InlineTable) -> anyhow::Result<()> {
        let workspace = self.workspace_table()?;
        let dependencies = workspace
            .entry("dependencies")
            .or_insert_with(|| Item::Table(Table::new()))
            .as_table_mut()
            .context("`workspace.dependencies` is not a table")?;
        dependencies.insert(name, Item::Value(Value::InlineTable(line)));
        Ok(())
    }

    /// `name = { version = "<version>", features = [...] }` in `[workspace.dependencies]`.
    pub fn add_registry_dependency(
        &mut self,
        name: &str,
        version: &str,
        features: &[&str],
    ) -> anyhow::Result<()> {
        let mut line = InlineTable::new();
        line.insert("version", Value::from(version));
        if !features.is_empty() {
            line.insert("features", Value::Array(features.iter().copied().collect()));
        }
        self.set_workspace_dependency(name, line)
    }

    /// The string at `keys` (`["workspace", "package", "edition"]`), through tables and
    /// inline tables alike, when there is one.
    pub fn string_at(&self, keys: &[&str]) -> Option<&str> {
        let (first, rest) = keys.split_first()?;
        rest.iter()
            .try_fold(self.document.get(first)?, |item, key| item.get(key))?
            .as_str()
    }

    /// Whether `[workspace.package]` sets `key`, so members can write `key.workspace = true`.
    pub fn inherits_package_field(&self, key: &str) -> bool {
        self.document
            .get("workspace")
            .and_then(|workspace| workspace.get("package"))
            .and_then(|package| package.get(key))
            .is_some()
    }

    pub fn has_workspace_dependency(&self, name: &str) -> bool {
        self.document
            .get("workspace")
            .and_then(|workspace| workspace.get("dependencies"))
            .and_then(|dependencies| dependencies.get(name))
            .is_some()
    }

    pub fn remove_workspace_dependency(&mut self, name: &str) {
        if let Some(dependencies) = self
            .document
            .get_mut("workspace")
            .and_then(|workspace| workspace.get_mut("dependencies"))
            .and_then(Item::as_table_like_mut)
        {
            dependencies.remove(name);
        }
    }

    /// `name.workspace = true` in `[dependencies]`.
    pub fn add_workspace_dependency_use(&mut self, name: &str) -> anyhow::Result<()> {
        let path = self.path.display().to_string();
        let dependencies = self
            .document
            .entry("dependencies")
            .or_insert_with(|| Item::Table(Table::new()))
            .as_table_mut()
            .with_context(|| format!("{path}: `[dependencies]` is not a table"))?;
        // `name.workspace = true`, as the rest of the workspace writes it.
        let mut line = Table::new();
        line.insert("workspace", toml_edit::value(true));
        line.set_dotted(true);
        dependencies.insert(name, Item::Table(line));
        Ok(())
    }

    /// Takes `name` out of every dependency table of the manifest.
    pub fn remove_dependency(&mut self, name: &str) {
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(dependencies) = self
                .document
                .get_mut(table)
                .and_then(Item::as_table_like_mut)
            {
                dependencies.remove(name);
            }
        }
    }
}
