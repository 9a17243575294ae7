//! Rust source as a flat list of tokens with their line and column, comments dropped.
//!
//! The lexing is rustc's own (`rustc-ap-rustc_lexer`). We do not use `syn` here because
//! inside a proc macro `syn`/`proc-macro2` lex through the compiler, whose spans for text
//! we read from disk all point at the macro's call site: the rules need file positions, and
//! they are lexical (a token's neighbours), so a token list is all they need.

use rustc_ap_rustc_lexer::{LiteralKind, TokenKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword; a raw identifier (`r#std`) is stored without its `r#`.
    Ident,
    /// A string literal (plain or raw); `text` is its contents without quotes.
    Str,
    /// Any other literal or a lifetime.
    Other,
    Punct(char),
}

#[derive(Clone, Debug)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
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
    let start = rustc_ap_rustc_lexer::strip_shebang(source).unwrap_or(0);
    let mut offset = start;
    let (mut line, mut column) = (1 + source[..start].matches('\n').count(), 1);
    let mut out = Vec::new();
    for token in rustc_ap_rustc_lexer::tokenize(&source[start..]) {
        let text = &source[offset..offset + token.len];
        let kind = match token.kind {
            TokenKind::LineComment { .. }
            | TokenKind::BlockComment { .. }
            | TokenKind::Whitespace => None,
            TokenKind::Ident | TokenKind::UnknownPrefix => Some((Kind::Ident, text)),
            TokenKind::RawIdent => Some((Kind::Ident, text.trim_start_matches("r#"))),
            TokenKind::Literal {
                kind: LiteralKind::Str { .. },
                ..
            } => Some((Kind::Str, text.trim_matches('"'))),
            TokenKind::Literal {
                kind: LiteralKind::RawStr { .. },
                ..
            } => Some((
                Kind::Str,
                text.trim_start_matches('r')
                    .trim_matches('#')
                    .trim_matches('"'),
            )),
            TokenKind::Literal { .. } | TokenKind::Lifetime { .. } => Some((Kind::Other, text)),
            _ => text.chars().next().map(|c| (Kind::Punct(c), text)),
        };
        if let Some((kind, text)) = kind {
            out.push(Token {
                kind,
                text,
                line,
                column,
            });
        }
        for c in source[offset..offset + token.len].chars() {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        offset += token.len;
    }
    out
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
            .map(|t| (t.text, t.line, t.column))
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
}
