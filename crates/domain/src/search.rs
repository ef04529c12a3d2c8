//! MLflow's search grammar: filters (`metrics.acc > 0.9 AND params.opt = 'adam'`), `order_by`
//! clauses and page tokens. Parsing yields a small syntax tree the store turns into a query; which
//! entity types and attributes a listing accepts is checked here too, so every backend agrees.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

impl Entity {
    fn parse(word: &str) -> Result<Self> {
        match word {
            "metric" | "metrics" => Ok(Self::Metric),
            "param" | "params" | "parameter" | "parameters" => Ok(Self::Param),
            "tag" | "tags" => Ok(Self::Tag),
            "attribute" | "attributes" | "attr" | "run" => Ok(Self::Attribute),
            "dataset" | "datasets" => Ok(Self::Dataset),
            other => Err(Error::invalid(format!(
                "Invalid entity type '{other}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Like | Self::ILike => "LIKE",
            Self::In => "IN",
            Self::NotIn => "NOT IN",
            Self::IsNull => "IS NULL",
            Self::IsNotNull => "IS NOT NULL",
        }
    }
    fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    List(Vec<String>),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Entity,
    pub key: String,
    pub ascending: bool,
}

/// Which listing a filter or ordering is for; each accepts its own attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Runs,
    Experiments,
    LoggedModels,
}

/// Attributes with numeric values take the metric operators; the rest are strings.
const RUN_NUMERIC_ATTRIBUTES: &[&str] = &["start_time", "end_time"];
const RUN_STRING_ATTRIBUTES: &[&str] = &["run_id", "run_name", "status", "user_id", "artifact_uri"];
const EXPERIMENT_NUMERIC_ATTRIBUTES: &[&str] = &["creation_time", "last_update_time"];
const EXPERIMENT_STRING_ATTRIBUTES: &[&str] = &["name", "experiment_id"];
const MODEL_NUMERIC_ATTRIBUTES: &[&str] = &["creation_timestamp", "last_updated_timestamp"];
const MODEL_STRING_ATTRIBUTES: &[&str] =
    &["name", "model_id", "model_type", "status", "source_run_id"];

impl Target {
    fn numeric_attributes(self) -> &'static [&'static str] {
        match self {
            Self::Runs => RUN_NUMERIC_ATTRIBUTES,
            Self::Experiments => EXPERIMENT_NUMERIC_ATTRIBUTES,
            Self::LoggedModels => MODEL_NUMERIC_ATTRIBUTES,
        }
    }
    fn string_attributes(self) -> &'static [&'static str] {
        match self {
            Self::Runs => RUN_STRING_ATTRIBUTES,
            Self::Experiments => EXPERIMENT_STRING_ATTRIBUTES,
            Self::LoggedModels => MODEL_STRING_ATTRIBUTES,
        }
    }
    fn entities(self) -> &'static [Entity] {
        match self {
            Self::Runs => &[
                Entity::Metric,
                Entity::Param,
                Entity::Tag,
                Entity::Attribute,
                Entity::Dataset,
            ],
            Self::Experiments => &[Entity::Tag, Entity::Attribute],
            Self::LoggedModels => &[
                Entity::Metric,
                Entity::Param,
                Entity::Tag,
                Entity::Attribute,
            ],
        }
    }
    /// Maps the aliases MLflow accepts (`created`, `Run name`, ...) to the attribute's real name.
    fn canonical_attribute(self, key: &str) -> String {
        match (self, key) {
            (Self::Runs, "created" | "Created") => "start_time".into(),
            (Self::Runs, "run name" | "Run name" | "Run Name") => "run_name".into(),
            (Self::Runs, "run_uuid") => "run_id".into(),
            _ => key.to_string(),
        }
    }
    pub fn is_numeric_attribute(self, key: &str) -> bool {
        self.numeric_attributes().contains(&key)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted {
        text: String,
        backquoted: bool,
        double: bool,
    },
    Number(f64),
    Op(Op),
    Dot,
    Comma,
    LParen,
    RParen,
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '\'' | '"' | '`' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(Error::invalid(format!(
                                "Invalid filter '{input}': unterminated quoted string"
                            )));
                        }
                        Some(&q) if q == c => {
                            // A doubled quote inside a string stands for the quote itself.
                            if chars.get(i + 1) == Some(&c) {
                                text.push(c);
                                i += 2;
                                continue;
                            }
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            text.push(other);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Quoted {
                    text,
                    backquoted: c == '`',
                    double: c == '"',
                });
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                tokens.push(Token::Dot);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let (op, len) = match two.as_str() {
                    "!=" | "<>" => (Op::Ne, 2),
                    "<=" => (Op::Le, 2),
                    ">=" => (Op::Ge, 2),
                    "==" => (Op::Eq, 2),
                    _ => match c {
                        '=' => (Op::Eq, 1),
                        '<' => (Op::Lt, 1),
                        '>' => (Op::Gt, 1),
                        _ => {
                            return Err(Error::invalid(format!(
                                "Invalid filter '{input}': unexpected '!'"
                            )));
                        }
                    },
                };
                tokens.push(Token::Op(op));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E')
                        || (matches!(chars[i], '-' | '+') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let number = text.parse::<f64>().map_err(|_| {
                    Error::invalid(format!("Invalid filter '{input}': bad number '{text}'"))
                })?;
                tokens.push(Token::Number(number));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '/' | ':' | '-'))
                {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid filter '{input}': unexpected character '{other}'"
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    target: Target,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }
    fn error(&self, why: &str) -> Error {
        Error::invalid(format!("Invalid filter '{}': {why}", self.input))
    }
    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    /// `entity.key`, `key`, or either with backquoted/double-quoted parts.
    fn identifier(&mut self) -> Result<(Entity, String)> {
        let first = match self.next() {
            Some(Token::Word(w)) => w,
            Some(Token::Quoted {
                text, backquoted, ..
            }) if backquoted => text,
            _ => return Err(self.error("expected an identifier such as metrics.acc")),
        };
        if self.peek() != Some(&Token::Dot) {
            return self.resolve(Entity::Attribute, first);
        }
        let entity = Entity::parse(&first)?;
        let mut key = String::new();
        while self.peek() == Some(&Token::Dot) {
            self.pos += 1;
            if !key.is_empty() {
                key.push('.');
            }
            match self.next() {
                Some(Token::Word(w)) => key.push_str(&w),
                Some(Token::Quoted { text, .. }) => key.push_str(&text),
                Some(Token::Number(n)) => key.push_str(&n.to_string()),
                _ => return Err(self.error("expected a key after '.'")),
            }
        }
        self.resolve(entity, key)
    }

    fn resolve(&self, entity: Entity, key: String) -> Result<(Entity, String)> {
        if !self.target.entities().contains(&entity) {
            return Err(self.error(&format!("{entity:?} is not searchable here").to_lowercase()));
        }
        if entity == Entity::Attribute {
            let key = self.target.canonical_attribute(&key);
            if !self.target.numeric_attributes().contains(&key.as_str())
                && !self.target.string_attributes().contains(&key.as_str())
            {
                return Err(self.error(&format!(
                    "invalid attribute key '{key}'; valid keys are {:?}",
                    [
                        self.target.string_attributes(),
                        self.target.numeric_attributes()
                    ]
                    .concat()
                )));
            }
            return Ok((entity, key));
        }
        if entity == Entity::Dataset && !matches!(key.as_str(), "name" | "digest" | "context") {
            return Err(self.error(&format!(
                "invalid dataset key '{key}'; valid keys are name, digest and context"
            )));
        }
        Ok((entity, key))
    }

    fn operator(&mut self) -> Result<Op> {
        match self.next() {
            Some(Token::Op(op)) => Ok(op),
            Some(Token::Word(w)) => match w.to_ascii_uppercase().as_str() {
                "LIKE" => Ok(Op::Like),
                "ILIKE" => Ok(Op::ILike),
                "IN" => Ok(Op::In),
                "NOT" if self.keyword("IN") => {
                    self.pos += 1;
                    Ok(Op::NotIn)
                }
                "IS" => {
                    let negated = self.keyword("NOT");
                    if negated {
                        self.pos += 1;
                    }
                    if !self.keyword("NULL") {
                        return Err(self.error("expected NULL after IS"));
                    }
                    self.pos += 1;
                    Ok(if negated { Op::IsNotNull } else { Op::IsNull })
                }
                _ => Err(self.error(&format!("invalid comparator '{w}'"))),
            },
            _ => Err(self.error("expected a comparator")),
        }
    }

    fn value(&mut self, op: Op) -> Result<Value> {
        if matches!(op, Op::IsNull | Op::IsNotNull) {
            return Ok(Value::Null);
        }
        if matches!(op, Op::In | Op::NotIn) {
            if self.next() != Some(Token::LParen) {
                return Err(self.error("expected '(' after IN"));
            }
            let mut items = Vec::new();
            loop {
                match self.next() {
                    Some(Token::Quoted {
                        text,
                        backquoted: false,
                        ..
                    }) => items.push(text),
                    Some(Token::Number(n)) => items.push(format_number(n)),
                    _ => return Err(self.error("expected a quoted string in the IN list")),
                }
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::RParen) => break,
                    _ => return Err(self.error("expected ',' or ')' in the IN list")),
                }
            }
            return Ok(Value::List(items));
        }
        match self.next() {
            Some(Token::Number(n)) => Ok(Value::Number(n)),
            Some(Token::Quoted {
                text,
                backquoted: false,
                ..
            }) => Ok(Value::Text(text)),
            _ => Err(self.error("expected a value: a number or a quoted string")),
        }
    }

    fn clause(&mut self) -> Result<Clause> {
        let (entity, key) = self.identifier()?;
        let op = self.operator()?;
        let value = self.value(op)?;
        let clause = Clause {
            entity,
            key,
            op,
            value,
        };
        self.check(&clause)?;
        Ok(clause)
    }

    fn check(&self, c: &Clause) -> Result<()> {
        let numeric = c.entity == Entity::Metric
            || (c.entity == Entity::Attribute && self.target.is_numeric_attribute(&c.key));
        if numeric {
            if !c.op.is_comparison() {
                return Err(self.error(&format!(
                    "invalid comparator '{}' for a numeric value; use one of > >= < <= = !=",
                    c.op.sql()
                )));
            }
            if !matches!(c.value, Value::Number(_)) {
                return Err(self.error(&format!("expected numeric value type for '{}'", c.key)));
            }
            return Ok(());
        }
        match c.op {
            Op::Lt | Op::Le | Op::Gt | Op::Ge => Err(self.error(&format!(
                "invalid comparator '{}' for a string value; use one of = != LIKE ILIKE",
                c.op.sql()
            ))),
            Op::In | Op::NotIn
                if !(c.entity == Entity::Dataset
                    || (c.entity == Entity::Attribute
                        && matches!(c.key.as_str(), "run_id" | "experiment_id" | "name"))) =>
            {
                Err(self.error("only run_id attributes support comparison with a list"))
            }
            Op::IsNull | Op::IsNotNull if !matches!(c.entity, Entity::Param | Entity::Tag) => {
                Err(self.error("IS NULL applies to params and tags only"))
            }
            _ if matches!(c.value, Value::Number(_)) => {
                Err(self.error(&format!("value for '{}' must be a quoted string", c.key)))
            }
            _ => Ok(()),
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Parses a filter string into clauses joined by AND. An empty filter matches everything.
pub fn parse_filter(input: &str, target: Target) -> Result<Vec<Clause>> {
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        input,
        tokens,
        pos: 0,
        target,
    };
    let mut clauses = Vec::new();
    while parser.peek().is_some() {
        clauses.push(parser.clause()?);
        match parser.next() {
            None => break,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("AND") => {}
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(
                    parser.error("invalid clause(s) in filter string: 'OR'; only AND is supported")
                );
            }
            Some(_) => return Err(parser.error("expected AND between clauses")),
        }
        if parser.peek().is_none() {
            return Err(parser.error("filter ends with AND"));
        }
    }
    Ok(clauses)
}

/// Parses `order_by` entries such as `metrics.acc DESC` or `` tags.`my tag` ``.
pub fn parse_order_by(items: &[String], target: Target) -> Result<Vec<OrderBy>> {
    let mut out: Vec<OrderBy> = Vec::new();
    for item in items {
        let tokens = tokenize(item)?;
        let mut parser = Parser {
            input: item,
            tokens,
            pos: 0,
            target,
        };
        let (entity, key) = parser.identifier()?;
        if entity == Entity::Dataset || (target == Target::LoggedModels && entity == Entity::Metric)
        {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{item}': {entity:?} keys cannot be ordered by here"
            )));
        }
        let ascending = match parser.next() {
            None => true,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("ASC") => true,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("DESC") => false,
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid order_by clause '{item}': expected ASC or DESC after the key"
                )));
            }
        };
        if parser.peek().is_some() {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{item}': unexpected text after the direction"
            )));
        }
        if out.iter().any(|o| o.entity == entity && o.key == key) {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{item}': '{key}' is ordered by twice"
            )));
        }
        out.push(OrderBy {
            entity,
            key,
            ascending,
        });
    }
    Ok(out)
}

/// An opaque page token: base64 of `{"offset": N}`, the same shape MLflow uses.
pub fn decode_page_token(token: Option<&str>) -> Result<i64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bytes = BASE64
        .decode(token)
        .map_err(|_| Error::invalid("Invalid page token, could not base64-decode"))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| Error::invalid("Invalid page token, could not parse JSON"))?;
    value
        .get("offset")
        .and_then(serde_json::Value::as_i64)
        .filter(|o| *o >= 0)
        .ok_or_else(|| Error::invalid("Invalid page token: no valid offset"))
}

pub fn encode_page_token(offset: i64) -> String {
    BASE64.encode(format!("{{\"offset\": {offset}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(f: &str) -> Result<Vec<Clause>> {
        parse_filter(f, Target::Runs)
    }

    #[test]
    fn parses_the_common_shapes() {
        let c =
            runs("metrics.acc > 0.9 AND params.opt = 'adam' and tags.`my tag` LIKE '%x%'").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].entity, Entity::Metric);
        assert_eq!(c[0].value, Value::Number(0.9));
        assert_eq!(c[1].key, "opt");
        assert_eq!(c[2].key, "my tag");
        assert_eq!(c[2].op, Op::Like);
        let c = runs("attributes.run_id IN ('a', 'b') AND params.x IS NOT NULL").unwrap();
        assert_eq!(c[0].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(c[1].op, Op::IsNotNull);
        let c = runs("run_name = \"x\" AND created >= -5 AND tags.\"a b\" != 'q'").unwrap();
        assert_eq!(c[0].key, "run_name");
        assert_eq!(c[1].key, "start_time");
        assert_eq!(c[1].value, Value::Number(-5.0));
        assert_eq!(c[2].key, "a b");
        assert_eq!(runs("").unwrap(), vec![]);
        let c = runs("metrics.loss/train.step < 1e-3").unwrap();
        assert_eq!(c[0].key, "loss/train.step");
    }

    #[test]
    fn rejects_what_mlflow_rejects() {
        for bad in [
            "metrics.acc > 1 OR metrics.acc < 0",
            "metrics.acc > 'x'",
            "params.opt = adam",
            "params.opt > 'a'",
            "run_name IN ('a')",
            "foo.bar = 'x'",
            "attributes.nope = 'x'",
            "metrics.acc >",
            "metrics.acc > 1 AND",
            "(metrics.acc > 1)",
            "params.x = 'unterminated",
        ] {
            assert!(runs(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn order_by_and_tokens() {
        let o = parse_order_by(
            &["metrics.acc DESC".into(), "start_time".into()],
            Target::Runs,
        )
        .unwrap();
        assert!(!o[0].ascending && o[1].ascending);
        assert!(
            parse_order_by(&["metrics.a".into(), "metrics.a desc".into()], Target::Runs).is_err()
        );
        assert!(parse_order_by(&["foo.a".into()], Target::Runs).is_err());
        assert_eq!(decode_page_token(Some(&encode_page_token(42))).unwrap(), 42);
        assert_eq!(decode_page_token(Some("eyJvZmZzZXQiOiAyfQ==")).unwrap(), 2);
        assert!(decode_page_token(Some("!!!")).is_err());
    }
}
