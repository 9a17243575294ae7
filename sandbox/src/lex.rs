//! Rust source as a flat list of tokens with their line and column, comments dropped.
//!
//! The lexing is rustc's own (`ra-ap-rustc_lexer`, the compiler's `rustc_lexer` published
//! as it is, and `rustc-literal-escaper` for what a string literal means). We do not use
//! `syn` here because inside a proc macro `syn`/`proc-macro2` lex through the compiler,
//! whose spans for text we read from disk all point at the macro's call site: the rules
//! need file positions, and they are lexical (a token's neighbours), so a token list is all
//! they need.
//!
//! The lexer **fails closed**: whatever rustc would refuse or read in a way these rules do
//! not model (an unterminated literal, an unknown prefix, a reserved guarded string, a
//! frontmatter block, a character that starts no token) is a [`Kind::Unreadable`] token, which
//! the sandbox reports as a finding, never skips. A literal the scan mis-read could
//! otherwise hide arbitrary code between two quotes.

use std::borrow::Cow;

use ra_ap_rustc_lexer::{FrontmatterAllowed, LiteralKind, TokenKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword; a raw identifier (`r#std`) is stored without its `r#`.
    Ident,
    /// A string literal (plain or raw); `text` is its value, escapes resolved.
    Str,
    /// Any other literal or a lifetime.
    Other,
    Punct(char),
    /// Something the sandbox cannot read the way rustc does; `text` is what was written and
    /// the reason names why.
    Unreadable(&'static str),
}

#[derive(Clone, Debug)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: Cow<'a, str>,
    pub line: usize,
    pub column: usize,
}

impl Token<'_> {
    pub fn is_ident(&self, name: &str) -> bool {
        self.kind == Kind::Ident && self.text == name
    }

    pub fn is_punct(&self, punct: char) -> bool {
        self.kind == Kind::Punct(punct)
    }
}

pub fn tokens(source: &str) -> Vec<Token<'_>> {
    let start = ra_ap_rustc_lexer::strip_shebang(source).unwrap_or(0);
    let mut offset = start;
    let (mut line, mut column) = (1 + source[..start].matches('\n').count(), 1);
    let mut out = Vec::new();
    for token in ra_ap_rustc_lexer::tokenize(&source[start..], FrontmatterAllowed::No) {
        let len = token.len as usize;
        let text = &source[offset..offset + len];
        if let Some(kind) = classify(&token.kind, text) {
            let text = match kind {
                Kind::Str => string_value(&token.kind, text),
                Kind::Ident => Cow::Borrowed(text.trim_start_matches("r#")),
                _ => Cow::Borrowed(text),
            };
            out.push(Token {
                kind,
                text,
                line,
                column,
            });
        }
        for c in text.chars() {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        offset += len;
    }
    out
}

/// The sandbox's reading of one of rustc's token kinds; `None` for what carries no code
/// (whitespace, comments).
fn classify(kind: &TokenKind, text: &str) -> Option<Kind> {
    use Kind::Unreadable;
    Some(match kind {
        TokenKind::Whitespace | TokenKind::LineComment { .. } => return None,
        TokenKind::BlockComment {
            terminated: true, ..
        } => return None,
        TokenKind::BlockComment {
            terminated: false, ..
        } => Unreadable("an unterminated block comment"),
        TokenKind::Ident | TokenKind::RawIdent => Kind::Ident,
        TokenKind::Literal { kind, .. } => match kind {
            LiteralKind::Str { terminated: true } | LiteralKind::RawStr { n_hashes: Some(_) } => {
                Kind::Str
            }
            LiteralKind::Str { terminated: false }
            | LiteralKind::ByteStr { terminated: false }
            | LiteralKind::CStr { terminated: false }
            | LiteralKind::Char { terminated: false }
            | LiteralKind::Byte { terminated: false } => Unreadable("an unterminated literal"),
            LiteralKind::RawStr { n_hashes: None }
            | LiteralKind::RawByteStr { n_hashes: None }
            | LiteralKind::RawCStr { n_hashes: None } => Unreadable("a malformed raw string"),
            _ => Kind::Other,
        },
        TokenKind::Lifetime {
            starts_with_number: false,
        }
        | TokenKind::RawLifetime => Kind::Other,
        TokenKind::Lifetime {
            starts_with_number: true,
        } => Unreadable("a lifetime that starts with a digit"),
        TokenKind::InvalidIdent => Unreadable("an identifier rustc does not accept"),
        TokenKind::UnknownPrefix | TokenKind::UnknownPrefixLifetime => {
            Unreadable("a reserved literal prefix")
        }
        TokenKind::GuardedStrPrefix => Unreadable("a reserved guarded string (`#\"…\"#`)"),
        TokenKind::ForcedKeywordIdent => Unreadable("a forced keyword (`k#…`)"),
        TokenKind::Frontmatter { .. } => Unreadable("a frontmatter block"),
        TokenKind::Unknown => Unreadable("a character that starts no token"),
        TokenKind::Eof => return None,
        _ => Kind::Punct(text.chars().next()?),
    })
}

/// The value of a string literal: escapes resolved for a plain string, the text between the
/// quotes for a raw one. An escape rustc would refuse leaves the literal as written.
fn string_value<'a>(kind: &TokenKind, text: &'a str) -> Cow<'a, str> {
    let raw = matches!(
        kind,
        TokenKind::Literal {
            kind: LiteralKind::RawStr { .. },
            ..
        }
    );
    if raw {
        let body = text.trim_start_matches('r').trim_matches('#');
        return Cow::Borrowed(
            body.strip_prefix('"')
                .unwrap_or(body)
                .strip_suffix('"')
                .unwrap_or(body),
        );
    }
    let body = text
        .strip_prefix('"')
        .and_then(|t| t.rsplit_once('"'))
        .map_or(text, |(body, _suffix)| body);
    if !body.contains('\\') {
        return Cow::Borrowed(body);
    }
    let mut value = String::with_capacity(body.len());
    let mut valid = true;
    rustc_literal_escaper::unescape_str(body, |_, c| match c {
        Ok(c) => value.push(c),
        Err(error) => valid &= !error.is_fatal(),
    });
    if valid {
        Cow::Owned(value)
    } else {
        Cow::Borrowed(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_know_where_they_are_and_comments_are_gone() {
        let source = "// std here is a comment\nuse r#std::net;\n/* std */ let s = \"std\";";
        let tokens = tokens(source);
        let idents: Vec<(&str, usize, usize)> = tokens
            .iter()
            .filter(|t| t.kind == Kind::Ident)
            .map(|t| (&*t.text, t.line, t.column))
            .collect();
        assert_eq!(
            idents,
            vec![
                ("use", 2, 1),
                ("std", 2, 5),
                ("net", 2, 12),
                ("let", 3, 11),
                ("s", 3, 15)
            ]
        );
        assert!(
            tokens
                .iter()
                .any(|t| t.kind == Kind::Str && t.text == "std")
        );
    }

    #[test]
    fn string_values_resolve_escapes_and_raw_strings_keep_their_text() {
        let source = r####"a("\x73td\u{3a}:net", r#"x"y"#, "plain")"####;
        let strings: Vec<String> = tokens(source)
            .into_iter()
            .filter(|t| t.kind == Kind::Str)
            .map(|t| t.text.into_owned())
            .collect();
        assert_eq!(strings, ["std::net", "x\"y", "plain"]);
    }

    /// Literals newer than the old lexer (C strings, raw lifetimes) are read as one token,
    /// and what rustc refuses is reported, never skipped: two of them cannot hide the code
    /// between them.
    #[test]
    fn new_literals_are_one_token_and_what_rustc_refuses_is_unreadable() {
        let read = tokens("let a = c\"x\"; let b = cr#\"y\"#; fn f<'r#a>() {} std::fs");
        assert!(read.iter().any(|t| t.is_ident("std")));
        assert!(!read.iter().any(|t| matches!(t.kind, Kind::Unreadable(_))));
        for refused in [
            "#\"x\"# std::fs",
            "k#std",
            "z\"x\"",
            "\"open",
            "/* open",
            "'1a",
            "€",
        ] {
            assert!(
                tokens(refused)
                    .iter()
                    .any(|t| matches!(t.kind, Kind::Unreadable(_))),
                "{refused}"
            );
        }
    }
}
