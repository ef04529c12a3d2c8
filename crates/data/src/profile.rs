//! Profiles of tabular data: row count, column types, nulls, min/max/mean, distinct estimates and a
//! preview, computed in one pass over delimited (`csv` crate), JSON-lines (`serde_json`) or Parquet
//! (`parquet`, read as Arrow record batches) files.

use std::io::{BufRead, Read};

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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
    /// Dates and timestamps (typed sources only); their extremes are ISO 8601 text.
    DateTime,
    String,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Bool => "bool",
            Self::Int => "int",
            Self::Float => "float",
            Self::DateTime => "datetime",
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

    /// Adds a value read as text, whose kind is inferred.
    fn add(&mut self, text: &str) {
        if text.is_empty() {
            self.nulls += 1;
            return;
        }
        let field = text.as_bytes();
        if self.kind == ColumnType::Bool && is_bool(text) {
            self.add_text(field);
            return;
        }
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
                    self.add_number(kind, value, field);
                    return;
                }
                _ if self.kind == ColumnType::Empty && is_bool(text) => {
                    self.kind = ColumnType::Bool;
                }
                _ => self.kind = ColumnType::String,
            }
        }
        self.add_text(field);
    }

    /// Adds a number; `key` is what the distinct counter hashes.
    fn add_number(&mut self, kind: ColumnType, value: f64, key: &[u8]) {
        self.count += 1;
        self.distinct.insert(key);
        self.kind = self.kind.max(kind);
        self.sum += value;
        self.min_num = self.min_num.min(value);
        self.max_num = self.max_num.max(value);
    }

    /// Adds a value that is not a number, keeping its lexical extremes. The buffers are reused,
    /// since in a sorted column the extreme changes on every row.
    fn add_text(&mut self, field: &[u8]) {
        self.count += 1;
        self.distinct.insert(field);
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
    }

    /// Adds a typed column of a record batch: its Arrow type decides the column's kind.
    fn add_array(&mut self, array: &ArrayRef, file: &str) -> Result<()> {
        self.nulls += array.null_count() as u64;
        let present = |i: usize| array.is_valid(i);
        match array.data_type() {
            DataType::Boolean => {
                self.kind = self.kind.max(ColumnType::Bool);
                let values = array.as_boolean();
                for i in (0..array.len()).filter(|&i| present(i)) {
                    self.add_text(if values.value(i) { b"true" } else { b"false" });
                }
            }
            t if t.is_numeric() => {
                let kind = if t.is_integer() {
                    ColumnType::Int
                } else {
                    ColumnType::Float
                };
                let numbers = arrow_cast::cast(array, &DataType::Float64)
                    .map_err(|e| Error::invalid(format!("{file}: column {}: {e}", self.name)))?;
                let numbers = numbers.as_primitive::<Float64Type>();
                for i in (0..array.len()).filter(|&i| present(i)) {
                    let value = numbers.value(i);
                    self.add_number(kind, value, &value.to_le_bytes());
                }
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                self.kind = ColumnType::String;
                let mut add = |v: Option<&str>| {
                    if let Some(v) = v {
                        self.add_text(v.as_bytes());
                    }
                };
                match array.data_type() {
                    DataType::Utf8 => array.as_string::<i32>().iter().for_each(&mut add),
                    DataType::LargeUtf8 => array.as_string::<i64>().iter().for_each(&mut add),
                    _ => array.as_string_view().iter().for_each(&mut add),
                }
            }
            t => {
                let kind = if t.is_temporal() {
                    ColumnType::DateTime
                } else {
                    ColumnType::String
                };
                self.kind = self.kind.max(kind);
                let text = formatter(array, file)?;
                let mut buffer = String::new();
                for i in (0..array.len()).filter(|&i| present(i)) {
                    buffer.clear();
                    use std::fmt::Write;
                    write!(buffer, "{}", text.value(i))
                        .map_err(|e| Error::invalid(format!("{file}: {e}")))?;
                    self.add_text(buffer.as_bytes());
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> ColumnProfile {
        let numeric = matches!(self.kind, ColumnType::Int | ColumnType::Float)
            && self.min_num <= self.max_num;
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

fn is_bool(text: &str) -> bool {
    matches!(text, "true" | "false" | "True" | "False" | "TRUE" | "FALSE")
}

fn formatter<'a>(array: &'a ArrayRef, file: &str) -> Result<ArrayFormatter<'a>> {
    ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default().with_null(""))
        .map_err(|e| Error::invalid(format!("{file}: {e}")))
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

    fn row<'a>(&mut self, fields: impl Iterator<Item = &'a str> + Clone) {
        self.rows += 1;
        for (column, field) in self.columns.iter_mut().zip(fields.clone()) {
            column.add(field);
        }
        if self.preview.len() < PREVIEW_ROWS {
            self.preview.push(fields.map(str::to_string).collect());
        }
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
        // A whole record is checked for UTF-8 at once, not field by field.
        let bad = |e: csv::Error| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => Error::invalid(format!(
                "{file}, line {}: {len} fields where the header has {expected_len} (a ragged row)",
                pos.as_ref().map_or(0, |p| p.line())
            )),
            csv::ErrorKind::Utf8 { pos, .. } => Error::invalid(format!(
                "{file}, line {}: not valid UTF-8 (is the file in another encoding?)",
                pos.as_ref().map_or(0, |p| p.line())
            )),
            _ => Error::invalid(format!("{file}: {e}")),
        };
        let names: Vec<String> = if header {
            let h = csv.headers().map_err(bad)?;
            h.iter().map(str::to_string).collect()
        } else {
            Vec::new()
        };
        let mut record = csv::StringRecord::new();
        let mut first = true;
        while csv.read_record(&mut record).map_err(bad)? {
            if first {
                let names = if header {
                    names.clone()
                } else {
                    (1..=record.len()).map(|i| format!("Column{i}")).collect()
                };
                self.ensure_columns(names, file)?;
                first = false;
            }
            self.row(record.iter());
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
            self.row(texts.iter().map(String::as_str));
        }
        Ok(())
    }

    /// Reads one Parquet file, a record batch at a time.
    pub fn add_parquet(&mut self, file: std::fs::File, label: &str) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::invalid(format!("{label}: not a readable Parquet file: {e}"))
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
        let names = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        self.ensure_columns(names, label)?;
        for batch in builder.build().map_err(|e| bad(&e))? {
            let batch = batch.map_err(|e| bad(&e))?;
            self.add_batch(&batch, label)?;
        }
        Ok(())
    }

    fn add_batch(&mut self, batch: &RecordBatch, file: &str) -> Result<()> {
        let wanted = (PREVIEW_ROWS - self.preview.len()).min(batch.num_rows());
        if wanted > 0 {
            let texts = batch
                .columns()
                .iter()
                .map(|a| formatter(a, file))
                .collect::<Result<Vec<_>>>()?;
            for row in 0..wanted {
                self.preview
                    .push(texts.iter().map(|t| t.value(row).to_string()).collect());
            }
        }
        for (column, array) in self.columns.iter_mut().zip(batch.columns()) {
            column.add_array(array, file)?;
        }
        self.rows += batch.num_rows() as u64;
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

    /// The table both the CSV and the Parquet test profile: ids 1..3, a float with a null, a
    /// string with two distinct values, a bool.
    fn assert_sample_profile(profile: &Profile) {
        assert_eq!(profile.row_count, 3);
        let col = |n: &str| profile.columns.iter().find(|c| c.name == n).unwrap();
        assert_eq!(col("id").column_type, ColumnType::Int);
        assert_eq!(
            (col("id").min.as_deref(), col("id").max.as_deref()),
            (Some("1"), Some("3"))
        );
        assert_eq!(col("id").mean, Some(2.0));
        assert_eq!(col("score").column_type, ColumnType::Float);
        assert_eq!((col("score").nulls, col("score").mean), (1, Some(1.5)));
        assert_eq!(col("name").column_type, ColumnType::String);
        assert_eq!(col("name").distinct_estimate, 2);
        assert_eq!(col("name").min.as_deref(), Some("ann"));
        assert_eq!(col("ok").column_type, ColumnType::Bool);
        assert_eq!(profile.preview[1], vec!["2", "", "bob", "false"]);
    }

    #[test]
    fn a_csv_profile_has_types_nulls_extremes_and_distincts() {
        let csv = "id,score,name,ok\n1,0.5,ann,true\n2,,bob,false\n3,2.5,ann,true\n";
        let mut p = Profiler::new();
        p.add_delimited(csv.as_bytes(), b',', true, "t.csv")
            .unwrap();
        assert_sample_profile(&p.finish());
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

    #[test]
    fn parquet_columns_keep_their_types() {
        use arrow_array::{BooleanArray, Float64Array, Int32Array, StringArray};
        use std::sync::Arc;
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "score",
                Arc::new(Float64Array::from(vec![Some(0.5), None, Some(2.5)])) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from(vec!["ann", "bob", "ann"])) as ArrayRef,
            ),
            (
                "ok",
                Arc::new(BooleanArray::from(vec![true, false, true])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut file = tempfile::tempfile().unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let mut p = Profiler::new();
        p.add_parquet(file, "t.parquet").unwrap();
        assert_sample_profile(&p.finish());

        let err = Profiler::new()
            .add_parquet(tempfile::tempfile().unwrap(), "empty.parquet")
            .unwrap_err();
        assert!(
            err.message
                .contains("empty.parquet: not a readable Parquet file"),
            "{}",
            err.message
        );
    }
}
