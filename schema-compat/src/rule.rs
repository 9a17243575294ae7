//! The stable identifiers of schema changes, with the description SARIF rules carry.

use serde::Serialize;

macro_rules! rules {
    ($($variant:ident = $id:literal: $description:literal,)*) => {
        /// What changed between two schemas, as reports and CI annotations name it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($variant,)*
        }

        impl Rule {
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            pub fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)*
                }
            }

            pub fn description(self) -> &'static str {
                match self {
                    $(Rule::$variant => $description,)*
                }
            }
        }
    };
}

rules! {
    TypeNarrowed = "type-narrowed": "A JSON type the old schema allowed is no longer allowed.",
    TypeWidened = "type-widened": "A JSON type the old schema did not allow is now allowed.",
    NullableRemoved = "nullable-removed": "`null` is no longer allowed.",
    NullableAdded = "nullable-added": "`null` is now allowed.",
    EnumAdded = "enum-added": "The values are now limited to an enumeration.",
    EnumRemoved = "enum-removed": "The values are no longer limited to an enumeration.",
    EnumValueRemoved = "enum-value-removed": "A value of the enumeration (or the constant) was removed.",
    EnumValueAdded = "enum-value-added": "A value was added to the enumeration (or the constant changed).",
    MinimumRaised = "minimum-raised": "The lower bound of numbers rose (exclusive bounds and integers counted exactly).",
    MinimumLowered = "minimum-lowered": "The lower bound of numbers fell or was removed.",
    MaximumRaised = "maximum-raised": "The upper bound of numbers rose or was removed.",
    MaximumLowered = "maximum-lowered": "The upper bound of numbers fell.",
    MultipleOfChanged = "multiple-of-changed": "`multipleOf` changed.",
    MinLengthRaised = "min-length-raised": "Strings must now be longer.",
    MinLengthLowered = "min-length-lowered": "Shorter strings are now allowed.",
    MaxLengthRaised = "max-length-raised": "Longer strings are now allowed.",
    MaxLengthLowered = "max-length-lowered": "Strings must now be shorter.",
    PatternChanged = "pattern-changed": "The `pattern` strings must match changed (inclusion decided with automata).",
    FormatChanged = "format-changed": "The `format` changed; known formats assert their value sets.",
    MinItemsRaised = "min-items-raised": "Arrays must now have more items.",
    MinItemsLowered = "min-items-lowered": "Arrays may now have fewer items.",
    MaxItemsRaised = "max-items-raised": "Arrays may now have more items.",
    MaxItemsLowered = "max-items-lowered": "Arrays must now have fewer items.",
    UniqueItemsAdded = "unique-items-added": "Array items must now be distinct.",
    UniqueItemsRemoved = "unique-items-removed": "Array items may now repeat.",
    ItemsChanged = "items-changed": "The tuple (`prefixItems`) or `contains` constraints of arrays changed.",
    PropertyAdded = "property-added": "A property was declared.",
    PropertyRemoved = "property-removed": "A property is no longer declared.",
    RequiredPropertyAdded = "required-property-added": "A property that was not declared is now required.",
    PropertyBecameRequired = "property-became-required": "An optional property is now required.",
    PropertyBecameOptional = "property-became-optional": "A required property is now optional.",
    AdditionalPropertiesClosed = "additional-properties-closed": "Undeclared properties are now refused or constrained further.",
    AdditionalPropertiesOpened = "additional-properties-opened": "Undeclared properties are now allowed or constrained less.",
    MinPropertiesRaised = "min-properties-raised": "Objects must now have more properties.",
    MinPropertiesLowered = "min-properties-lowered": "Objects may now have fewer properties.",
    MaxPropertiesRaised = "max-properties-raised": "Objects may now have more properties.",
    MaxPropertiesLowered = "max-properties-lowered": "Objects must now have fewer properties.",
    PropertyNamesChanged = "property-names-changed": "The names properties may have changed (`propertyNames`, `patternProperties`).",
    DependenciesChanged = "dependencies-changed": "`dependentRequired` or `dependentSchemas` changed.",
    CompositionChanged = "composition-changed": "`allOf`, `anyOf`, `oneOf`, `not` or `if`/`then`/`else` changed.",
    ValuesNarrowed = "values-narrowed": "Some value the old schema accepted is no longer accepted.",
    ValuesWidened = "values-widened": "Some value the new schema accepts was not accepted before.",
    Undecidable = "undecidable-change": "Whether the change is compatible cannot be decided; it is treated as breaking.",
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.id() == *other
    }
}
