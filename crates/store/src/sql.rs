//! Building SQL with a variable number of bound values, for queries whose shape depends on input.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    Float(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// SQL text with `$N` placeholders and the values that fill them, in order.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        let n = self.args.len();
        self.text.push_str(&format!("${n}"));
        self
    }

    pub fn bind_text(&mut self, s: impl Into<String>) -> &mut Self {
        self.bind(Arg::Text(s.into()))
    }

    /// Appends `(v1, v2, …)` with one placeholder per value.
    pub fn bind_list<I: IntoIterator<Item = Arg>>(&mut self, items: I) -> &mut Self {
        self.text.push('(');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(item);
        }
        self.text.push(')');
        self
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments> {
        // Only code in this crate writes `text`; every outside value goes through `bind`.
        let mut q = sqlx::query(AssertSqlSafe(self.text.as_str()));
        for arg in &self.args {
            q = match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::Float(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::Blob(v) => q.bind(v.as_slice()),
            };
        }
        q
    }
}

/// Sets `tag.key` to `tag.value` in a key/value table (`experiment_tags`, `run_tags`, …) whose
/// owner is named by `owner_column`, replacing any earlier value.
pub async fn upsert_key_value(
    tx: &mut sqlx::Transaction<'static, Any>,
    table: &'static str,
    owner_column: &'static str,
    owner: Arg,
    tag: &kittiwake_domain::Tag,
) -> kittiwake_domain::Result<()> {
    let mut sql = Sql::new(format!(
        "INSERT INTO {table} ({owner_column}, key, value) VALUES ("
    ));
    sql.bind(owner)
        .push(", ")
        .bind_text(tag.key.clone())
        .push(", ")
        .bind_text(tag.value.clone());
    sql.push(&format!(
        ") ON CONFLICT ({owner_column}, key) DO UPDATE SET value = excluded.value"
    ));
    sql.query()
        .execute(&mut **tx)
        .await
        .map_err(crate::db_error)?;
    Ok(())
}
