//! Profiles of tabular data: row count, column types, nulls, min/max/mean, distinct estimates and a
//! preview, computed in one pass over delimited (`csv` crate) or JSON-lines (`serde_json`) files.

use std::io::{BufRead, Read};

use hyperloglogplus::{HyperLogLog, HyperLogLogPF};
use kittiwake_domain::{Error, Result};
use serde_json::Value;

/// Rows shown in a profile's preview.
pub const PREVIEW_ROWS: usize = 10;

/// What a column holds, from the narrowest kind every value fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColumnType {
    Empty,
    Bool,
    Int,
    Float,
    String,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Bool => "bool",
            Self::Int => "int",
            Self::Float => "float",
            Self::String => "string",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnProfile {
    pub name: String,
    pub column_type: ColumnType,
    pub count: u64,
    pub nulls: u64,
    /// For numeric columns the numeric extremes; otherwise the lexical extremes of the values
    /// that are not numbers.
    pub min: Option<String>,
    pub max: Option<String>,
    pub mean: Option<f64>,
    pub distinct_estimate: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub row_count: u64,
    pub columns: Vec<ColumnProfile>,
    /// The first rows, as text.
    pub preview: Vec<Vec<String>>,
}

struct Column {
    name: String,
    kind: ColumnType,
    count: u64,
    nulls: u64,
    sum: f64,
    min_num: f64,
    max_num: f64,
    min_text: Option<Vec<u8>>,
    max_text: Option<Vec<u8>>,
    /// foldhash rather than SipHash: the counter hashes every value, and needs no DoS resistance.
    distinct: HyperLogLogPF<[u8], foldhash::fast::FixedState>,
}

impl Column {
    fn new(name: String) -> Result<Self> {
        Ok(Self {
            name,
            kind: ColumnType::Empty,
            count: 0,
            nulls: 0,
            sum: 0.0,
            min_num: f64::INFINITY,
            max_num: f64::NEG_INFINITY,
            min_text: None,
            max_text: None,
            distinct: HyperLogLogPF::new(14, foldhash::fast::FixedState::default())
                .map_err(|e| Error::internal(format!("distinct counter: {e}")))?,
        })
    }

    /// Adds a value; `false` if it is not UTF-8.
    fn add(&mut self, field: &[u8]) -> bool {
        if field.is_empty() {
            self.nulls += 1;
            return true;
        }
        let Ok(text) = std::str::from_utf8(field) else {
            return false;
        };
        self.count += 1;
        self.distinct.insert(field);
        if self.kind != ColumnType::String {
            let number = if self.kind <= ColumnType::Int {
                text.parse::<i64>()
                    .map(|i| (ColumnType::Int, i as f64))
                    .ok()
            } else {
                None
            }
            .or_else(|| text.parse::<f64>().ok().map(|f| (ColumnType::Float, f)));
            match number {
                Some((kind, value)) if self.kind != ColumnType::Bool => {
                    self.kind = self.kind.max(kind);
                    self.sum += value;
                    self.min_num = self.min_num.min(value);
                    self.max_num = self.max_num.max(value);
                    return true;
                }
                _ if matches!(self.kind, ColumnType::Empty | ColumnType::Bool)
                    && matches!(text, "true" | "false" | "True" | "False" | "TRUE" | "FALSE") =>
                {
                    self.kind = ColumnType::Bool;
                }
                _ => self.kind = ColumnType::String,
            }
        }
        // Lexical extremes of the values that are not numbers; the buffers are reused, since in a
        // sorted column the extreme changes on every row.
        if self.min_text.as_deref().is_none_or(|m| field < m) {
            let m = self.min_text.get_or_insert_with(Vec::new);
            m.clear();
            m.extend_from_slice(field);
        }
        if self.max_text.as_deref().is_none_or(|m| field > m) {
            let m = self.max_text.get_or_insert_with(Vec::new);
            m.clear();
            m.extend_from_slice(field);
        }
        true
    }

    fn finish(mut self) -> ColumnProfile {
        let numeric = matches!(self.kind, ColumnType::Int | ColumnType::Float);
        let text = |t: Option<Vec<u8>>| t.map(|b| String::from_utf8_lossy(&b).into_owned());
        let (min, max) = if numeric {
            (
                Some(format_number(self.min_num)),
                Some(format_number(self.max_num)),
            )
        } else {
            (text(self.min_text), text(self.max_text))
        };
        ColumnProfile {
            mean: (numeric && self.count > 0).then(|| self.sum / self.count as f64),
            distinct_estimate: self.distinct.count().round() as u64,
            name: self.name,
            column_type: self.kind,
            count: self.count,
            nulls: self.nulls,
            min,
            max,
        }
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Accumulates a profile over several files of one table.
pub struct Profiler {
    columns: Vec<Column>,
    rows: u64,
    preview: Vec<Vec<String>>,
}

impl Profiler {
    pub fn new() -> Self {
        Self {
            columns: Vec::new(),
            rows: 0,
            preview: Vec::new(),
        }
    }

    fn ensure_columns(&mut self, names: Vec<String>, file: &str) -> Result<()> {
        if self.columns.is_empty() {
            for name in names {
                self.columns.push(Column::new(name)?);
            }
            return Ok(());
        }
        let known: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        if known != names {
            return Err(Error::invalid(format!(
                "{file} has columns {names:?}, but the dataset's first file has {known:?}"
            )));
        }
        Ok(())
    }

    /// Adds a row; `false` if a value is not UTF-8.
    fn row<'a>(&mut self, fields: impl Iterator<Item = &'a [u8]> + Clone) -> bool {
        self.rows += 1;
        let mut valid = true;
        for (column, field) in self.columns.iter_mut().zip(fields.clone()) {
            valid &= column.add(field);
        }
        if self.preview.len() < PREVIEW_ROWS {
            self.preview.push(
                fields
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
            );
        }
        valid
    }

    /// Reads one delimited file. A ragged row or a line that is not UTF-8 is an error naming the
    /// line.
    pub fn add_delimited<R: Read>(
        &mut self,
        reader: R,
        separator: u8,
        header: bool,
        file: &str,
    ) -> Result<()> {
        let mut csv = csv::ReaderBuilder::new()
            .buffer_capacity(1 << 20)
            .delimiter(separator)
            .has_headers(header)
            .flexible(false)
            .from_reader(reader);
        let bad = |e: csv::Error| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => Error::invalid(format!(
                "{file}, line {}: {len} fields where the header has {expected_len} (a ragged row)",
                pos.as_ref().map_or(0, |p| p.line())
            )),
            _ => Error::invalid(format!("{file}: {e}")),
        };
        let names: Vec<String> = if header {
            let h = csv.byte_headers().map_err(bad)?;
            h.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        } else {
            Vec::new()
        };
        let mut record = csv::ByteRecord::new();
        let mut first = true;
        while csv.read_byte_record(&mut record).map_err(bad)? {
            if first {
                let names = if header {
                    names.clone()
                } else {
                    (1..=record.len()).map(|i| format!("Column{i}")).collect()
                };
                self.ensure_columns(names, file)?;
                first = false;
            }
            if !self.row(record.iter()) {
                let line = record.position().map_or(0, |p| p.line());
                return Err(Error::invalid(format!(
                    "{file}, line {line}: not valid UTF-8 (is the file in another encoding?)"
                )));
            }
        }
        if first && header {
            self.ensure_columns(names, file)?;
        }
        Ok(())
    }

    /// Reads one JSON-lines file: each line an object; columns are the first line's keys.
    pub fn add_json_lines<R: BufRead>(&mut self, reader: R, file: &str) -> Result<()> {
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| Error::invalid(format!("{file}, line {}: {e}", i + 1)))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&line).map_err(|e| {
                Error::invalid(format!("{file}, line {}: not a JSON object: {e}", i + 1))
            })?;
            let object = value.as_object().ok_or_else(|| {
                Error::invalid(format!("{file}, line {}: not a JSON object", i + 1))
            })?;
            if self.columns.is_empty() {
                self.ensure_columns(object.keys().cloned().collect(), file)?;
            }
            let texts: Vec<String> = self
                .columns
                .iter()
                .map(|c| match object.get(&c.name) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                })
                .collect();
            self.row(texts.iter().map(|t| t.as_bytes()));
        }
        Ok(())
    }

    pub fn finish(self) -> Profile {
        Profile {
            row_count: self.rows,
            columns: self.columns.into_iter().map(Column::finish).collect(),
            preview: self.preview,
        }
    }
}

impl Default for Profiler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_profile_has_types_nulls_extremes_and_distincts() {
        let csv = "id,score,name,ok\n1,0.5,ann,true\n2,,bob,false\n3,2.5,ann,true\n";
        let mut p = Profiler::new();
        p.add_delimited(csv.as_bytes(), b',', true, "t.csv")
            .unwrap();
        let profile = p.finish();
        assert_eq!(profile.row_count, 3);
        let col = |n: &str| profile.columns.iter().find(|c| c.name == n).unwrap();
        assert_eq!(col("id").column_type, ColumnType::Int);
        assert_eq!(
            (col("id").min.as_deref(), col("id").max.as_deref()),
            (Some("1"), Some("3"))
        );
        assert_eq!(col("id").mean, Some(2.0));
        assert_eq!(col("score").column_type, ColumnType::Float);
        assert_eq!(col("score").nulls, 1);
        assert_eq!(col("score").mean, Some(1.5));
        assert_eq!(col("name").column_type, ColumnType::String);
        assert_eq!(col("name").distinct_estimate, 2);
        assert_eq!(col("ok").column_type, ColumnType::Bool);
        assert_eq!(profile.preview[1], vec!["2", "", "bob", "false"]);
    }

    #[test]
    fn ragged_rows_and_bad_encodings_name_their_line() {
        let mut p = Profiler::new();
        let err = p
            .add_delimited("a,b\n1,2\n3\n".as_bytes(), b',', true, "r.csv")
            .unwrap_err();
        assert!(
            err.message.contains("line 3") && err.message.contains("ragged"),
            "{}",
            err.message
        );
        let mut p = Profiler::new();
        let latin1: &[u8] = b"a,b\n1,2\ncaf\xe9,3\n";
        let err = p.add_delimited(latin1, b',', true, "l.csv").unwrap_err();
        assert!(
            err.message.contains("line 3") && err.message.contains("UTF-8"),
            "{}",
            err.message
        );
    }

    #[test]
    fn json_lines_profile_like_tables() {
        let mut p = Profiler::new();
        p.add_json_lines(
            "{\"x\": 1, \"y\": \"a\"}\n{\"x\": 3, \"y\": null}\n".as_bytes(),
            "j.jsonl",
        )
        .unwrap();
        let profile = p.finish();
        assert_eq!(profile.row_count, 2);
        assert_eq!(profile.columns[0].column_type, ColumnType::Int);
        assert_eq!(profile.columns[1].nulls, 1);
        let err = Profiler::new()
            .add_json_lines("{\"x\": 1}\nnot json\n".as_bytes(), "b.jsonl")
            .unwrap_err();
        assert!(err.message.contains("b.jsonl, line 2"), "{}", err.message);
    }
}
