//! Ingest of the real NetCDF files in `../shared/data` (skipped with a message when absent, and
//! failing when absent under `CI=true`), checked against values read straight from the files,
//! ingest failures, and missing values the variable's type cannot hold.

mod common;

use common::shared_data;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use netcdf_reader::NcFile;
use predicates::prelude::*;

fn atlas_sql() -> Command {
    Command::cargo_bin("atlas-sql").unwrap()
}

/// Ingests `input` (a file or a folder) into a new store at `store`, quietly.
fn ingest_new(store: &Path, input: &Path) {
    atlas_sql()
        .arg("ingest")
        .arg(store)
        .arg(input)
        .arg("--create")
        .arg("-q")
        .assert()
        .success();
}

/// Runs SQL on a store and returns the CSV lines after the header.
fn csv(store: &Path, sql: &str) -> Vec<String> {
    let out = atlas_sql()
        .args([
            "--store",
            store.to_str().unwrap(),
            "--format",
            "csv",
            "-q",
            "-c",
            sql,
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn argo_profiles_ingest_and_match_the_files() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("argo.atlas");
    let mut folders: Vec<PathBuf> = Vec::new();
    for dac in std::fs::read_dir(data.join("argo/dac")).unwrap() {
        for float in std::fs::read_dir(dac.unwrap().path()).unwrap() {
            let p = float.unwrap().path().join("profiles");
            if p.is_dir() {
                folders.push(p);
            }
        }
    }
    folders.sort();
    let files: usize = folders
        .iter()
        .map(|f| std::fs::read_dir(f).unwrap().count())
        .sum();
    let mut cmd = atlas_sql();
    cmd.arg("ingest").arg(&store).args(&folders).arg("--create");
    cmd.assert()
        .success()
        .stderr(predicate::str::contains(format!("ingested {files} files")));

    let count = csv(&store, "SELECT count(*) FROM _datasets");
    assert_eq!(count, vec![files.to_string()]);

    // One profile, value by value against the file: fill 99999 is NULL, the rest equal.
    let file = data.join("argo/dac/bodc/6901929/profiles/R6901929_149.nc");
    let nc = NcFile::open(&file).unwrap();
    let temp = nc.read_variable::<f32>("TEMP").unwrap();
    let valid: Vec<f32> = temp.iter().copied().filter(|v| *v != 99999.0).collect();
    let sum: f64 = valid.iter().map(|v| f64::from(*v)).sum();
    let got = csv(
        &store,
        "SELECT count(*), count(\"TEMP\"), sum(CAST(\"TEMP\" AS DOUBLE)) FROM \"TEMP\" WHERE dataset = 'R6901929_149'",
    );
    let parts: Vec<&str> = got[0].split(',').collect();
    assert_eq!(parts[0], temp.len().to_string());
    assert_eq!(parts[1], valid.len().to_string());
    let got_sum: f64 = parts[2].parse().unwrap();
    assert!(
        (got_sum - sum).abs() < 1e-6 * sum.abs().max(1.0),
        "{got_sum} vs {sum}"
    );

    // JULD: days since 1950-01-01 decoded to timestamps; PLATFORM_NUMBER: chars folded to strings.
    let juld = nc.read_variable::<f64>("JULD").unwrap();
    let expected_s = (juld[[0]] - 7305.0) * 86400.0;
    let got = csv(
        &store,
        "SELECT CAST(to_unixtime(j.\"JULD\") AS DOUBLE), trim(p.\"PLATFORM_NUMBER\") FROM \"JULD\" j \
         JOIN \"PLATFORM_NUMBER\" p ON j.dataset = p.dataset AND j.\"N_PROF_index\" = p.\"N_PROF_index\" \
         WHERE j.dataset = 'R6901929_149' ORDER BY j.\"N_PROF_index\" LIMIT 1",
    );
    let parts: Vec<&str> = got[0].split(',').collect();
    let got_s: f64 = parts[0].parse().unwrap();
    assert!((got_s - expected_s).abs() < 1.0, "{got_s} vs {expected_s}");
    assert_eq!(parts[1], "6901929");

    // Pressure levels differ per file: the table holds each file's own length.
    let levels = nc.dimension("N_LEVELS").unwrap().size;
    let got = csv(
        &store,
        "SELECT max(\"N_LEVELS_index\") + 1 FROM \"PRES\" WHERE dataset = 'R6901929_149'",
    );
    assert_eq!(got, vec![levels.to_string()]);
}

#[test]
fn ersst_files_with_changing_time_units_compare_correctly() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("ersst.atlas");
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(data.join("ersst"))
        .args(["--create", "--chunk", "lat=45,lon=90"])
        .assert()
        .success();
    let got = csv(&store, "SELECT count(DISTINCT dataset), count(*) FROM sst");
    assert_eq!(got, vec![format!("192,{}", 192 * 89 * 180)]);
    // Monthly times, in order, whatever units each file used.
    let got = csv(
        &store,
        "SELECT min(time), max(time), count(DISTINCT date_trunc('month', time)) FROM time",
    );
    assert_eq!(got, vec!["2000-01-01T00:00:00,2015-12-01T00:00:00,192"]);
    let got = csv(
        &store,
        "SELECT count(*) FROM (SELECT dataset, time FROM time ORDER BY dataset) t \
         WHERE dataset <> concat('ersst.v5.', to_char(time, '%Y%m'))",
    );
    assert_eq!(got, vec!["0"]);
    // A cell against the file; land (_FillValue -999) is NULL.
    let file = data.join("ersst/ersst.v5.201201.nc");
    let nc = NcFile::open(&file).unwrap();
    let sst = nc.read_variable::<f32>("sst").unwrap();
    let land = sst.iter().filter(|v| **v == -999.0).count();
    let got = csv(
        &store,
        "SELECT count(*) - count(sst), max(sst) FROM sst WHERE dataset = 'ersst.v5.201201'",
    );
    let max = sst.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(got, vec![format!("{land},{max}")]);
    let cell = sst[[0, 0, 44, 100]];
    let got = csv(
        &store,
        "SELECT sst, lat, lon FROM sst WHERE dataset = 'ersst.v5.201201' AND lat_index = 44 AND lon_index = 100",
    );
    assert!(got[0].starts_with(&format!("{cell},")), "{got:?} vs {cell}");
}

#[test]
fn unreadable_files_are_reported_skipped_and_set_exit_code_3() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(data.join("xarray-data/tiny.nc"), input.join("tiny.nc")).unwrap();
    std::fs::write(input.join("broken.nc"), b"CDF\x01 not really").unwrap();
    let compounds = data.join("netcdf-c/nc_test4/ref_tst_compounds.nc");
    if compounds.exists() {
        std::fs::copy(&compounds, input.join("ref_tst_compounds.nc")).unwrap();
    }
    let store = dir.path().join("s.atlas");
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(&input)
        .arg("--create")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("broken.nc"));
    assert_eq!(csv(&store, "SELECT dataset FROM _datasets"), vec!["tiny"]);
    // Again: the existing dataset is reported unless --skip-existing.
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(input.join("tiny.nc"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("already exists"));
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(input.join("tiny.nc"))
        .arg("--skip-existing")
        .assert()
        .success();
}

#[test]
fn dataset_name_collisions_name_both_files() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::copy(
            data.join("xarray-data/tiny.nc"),
            dir.path().join(sub).join("tiny.nc"),
        )
        .unwrap();
    }
    let store = dir.path().join("s.atlas");
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .args([dir.path().join("a"), dir.path().join("b")])
        .arg("--create")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("a/tiny.nc").and(predicate::str::contains("b/tiny.nc")));
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(dir.path())
        .args(["--create", "--name-from", "relpath"])
        .assert()
        .success();
    let mut names = csv(&store, "SELECT dataset FROM _datasets ORDER BY dataset");
    names.sort();
    assert_eq!(names, vec!["a.tiny", "b.tiny"]);
}

/// A classic (CDF-1) NetCDF file: one dimension `x`, one `short` variable `v` with a `double`
/// `missing_value` (the encoding of the NetCDF classic format specification).
fn classic_short_file(values: &[i16], missing: f64) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    classic_file(
        3,
        values.len(),
        &data,
        &[("missing_value", NcAttr::Double(missing))],
    )
}

/// A variable attribute of [`classic_file`].
enum NcAttr {
    Double(f64),
    Byte(i8),
    Short(i16),
    Text(&'static str),
}

/// A classic (CDF-1) NetCDF file: one dimension `x` of `len`, one variable `v` of NetCDF type
/// `nc_type` (1 byte, 3 short) holding the big-endian `data`, with attributes `attrs`.
fn classic_file(nc_type: u32, len: usize, data: &[u8], attrs: &[(&str, NcAttr)]) -> Vec<u8> {
    classic_vars(
        "x",
        len,
        &[NcVar {
            name: "v",
            nc_type,
            data: data.to_vec(),
            attrs,
        }],
    )
}

/// A variable of [`classic_vars`].
struct NcVar<'a> {
    name: &'a str,
    /// NetCDF type: 1 byte, 3 short, 5 float, 6 double.
    nc_type: u32,
    /// Big-endian values.
    data: Vec<u8>,
    attrs: &'a [(&'a str, NcAttr)],
}

fn doubles(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn floats(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A classic (CDF-1) NetCDF file (the encoding of the NetCDF classic format specification):
/// one dimension `dim` of `len` and variables on it.
fn classic_vars(dim: &str, len: usize, vars: &[NcVar]) -> Vec<u8> {
    fn word(out: &mut Vec<u8>, v: u32) {
        out.extend(v.to_be_bytes());
    }
    fn name(out: &mut Vec<u8>, s: &str) {
        word(out, s.len() as u32);
        out.extend(s.as_bytes());
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    fn pad(out: &mut Vec<u8>) {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let mut h = b"CDF\x01".to_vec();
    word(&mut h, 0); // records
    word(&mut h, 0x0A); // dimensions
    word(&mut h, 1);
    name(&mut h, dim);
    word(&mut h, len as u32);
    h.extend([0u8; 8]); // no global attributes
    word(&mut h, 0x0B); // variables
    word(&mut h, vars.len() as u32);
    let mut begins = Vec::new();
    for var in vars {
        name(&mut h, var.name);
        word(&mut h, 1);
        word(&mut h, 0); // on dimension 0
        word(&mut h, 0x0C); // its attributes
        word(&mut h, var.attrs.len() as u32);
        for (key, value) in var.attrs {
            name(&mut h, key);
            match value {
                NcAttr::Double(x) => {
                    word(&mut h, 6);
                    word(&mut h, 1);
                    h.extend(x.to_be_bytes());
                }
                NcAttr::Byte(x) => {
                    word(&mut h, 1);
                    word(&mut h, 1);
                    h.extend(x.to_be_bytes());
                    pad(&mut h);
                }
                NcAttr::Short(x) => {
                    word(&mut h, 3);
                    word(&mut h, 1);
                    h.extend(x.to_be_bytes());
                    pad(&mut h);
                }
                NcAttr::Text(s) => {
                    word(&mut h, 2);
                    word(&mut h, s.len() as u32);
                    h.extend(s.as_bytes());
                    pad(&mut h);
                }
            }
        }
        word(&mut h, var.nc_type);
        word(&mut h, var.data.len().div_ceil(4) as u32 * 4);
        begins.push(h.len());
        word(&mut h, 0); // begin, set below
    }
    let mut offset = h.len();
    for (var, at) in vars.iter().zip(begins) {
        h[at..at + 4].copy_from_slice(&(offset as u32).to_be_bytes());
        offset += var.data.len().div_ceil(4) * 4;
    }
    for var in vars {
        h.extend(&var.data);
        pad(&mut h);
    }
    h
}

#[test]
fn a_missing_value_the_type_cannot_hold_turns_no_data_into_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let values = [1, i16::MAX, -5, 7];
    // 1e30 does not fit a short; saturated, it would have made 32767 a null.
    std::fs::write(input.join("wide.nc"), classic_short_file(&values, 1e30)).unwrap();
    std::fs::write(input.join("fits.nc"), classic_short_file(&values, -5.0)).unwrap();
    let store = dir.path().join("s.atlas");
    ingest_new(&store, &input);
    assert_eq!(
        csv(
            &store,
            "SELECT dataset, count(v), count(*), max(v) FROM v GROUP BY dataset ORDER BY dataset"
        ),
        vec!["fits,3,4,32767", "wide,4,4,32767"]
    );
}

#[test]
fn unsigned_data_in_signed_netcdf3_types_reads_as_unsigned_with_its_fill() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Bytes 0xFF (the fill, -1 as signed), 0xC8 (200 unsigned, -56 signed), 10.
    let bytes: Vec<u8> = vec![0xFF, 0xC8, 10];
    std::fs::write(
        input.join("u8.nc"),
        classic_file(
            1,
            3,
            &bytes,
            &[
                ("_Unsigned", NcAttr::Text("true")),
                ("_FillValue", NcAttr::Byte(-1)),
            ],
        ),
    )
    .unwrap();
    // Shorts 0xFFFF (65535 unsigned) and 2, scaled by 0.5.
    let shorts: Vec<u8> = [-1i16, 2].iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(
        input.join("u16.nc"),
        classic_file(
            3,
            2,
            &shorts,
            &[
                ("_Unsigned", NcAttr::Text("true")),
                ("scale_factor", NcAttr::Double(0.5)),
                ("_FillValue", NcAttr::Short(7)),
            ],
        ),
    )
    .unwrap();
    let store = dir.path().join("s.atlas");
    ingest_new(&store, &input.join("u8.nc"));
    assert_eq!(
        csv(
            &store,
            "SELECT count(*), count(v), min(v), max(v), arrow_typeof(v) FROM v GROUP BY arrow_typeof(v)"
        ),
        vec!["3,2,10,200,UInt8"]
    );
    let store = dir.path().join("t.atlas");
    ingest_new(&store, &input.join("u16.nc"));
    assert_eq!(
        csv(&store, "SELECT v FROM v ORDER BY x_index"),
        vec!["32767.5", "1.0"]
    );
}

#[test]
fn an_unwritable_temporary_directory_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.nc");
    std::fs::write(&file, classic_short_file(&[1, 2, 3], -5.0)).unwrap();
    let store = dir.path().join("s.atlas");
    // Segments are assembled in a temporary file; without one the ingest must say so.
    let out = atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(&file)
        .arg("--create")
        .arg("-q")
        .env("TMPDIR", dir.path().join("no-such-dir"))
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("temporary file"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

/// A profile file: `temp(time)` float in `temp_units` and a `time(time)` double with `time_attrs`.
fn profile(
    temps: &[f32],
    times: &[f64],
    temp_units: &'static str,
    time_attrs: &[(&str, NcAttr)],
) -> Vec<u8> {
    classic_vars(
        "time",
        temps.len(),
        &[
            NcVar {
                name: "temp",
                nc_type: 5,
                data: floats(temps),
                attrs: &[("units", NcAttr::Text(temp_units))],
            },
            NcVar {
                name: "time",
                nc_type: 6,
                data: doubles(times),
                attrs: time_attrs,
            },
        ],
    )
}

/// Two profiles `a`, `b` with decodable times in degC, and `c` with times that have no units,
/// in kelvin: the folder of the issue, in miniature.
fn mixed_folder(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    let days = [("units", NcAttr::Text("days since 2000-01-01"))];
    std::fs::write(
        input.join("a.nc"),
        profile(&[10.0, 11.0], &[0.0, 1.0], "degC", &days),
    )
    .unwrap();
    std::fs::write(input.join("b.nc"), profile(&[12.0], &[2.0], "degC", &days)).unwrap();
    std::fs::write(
        input.join("c.nc"),
        profile(&[285.0, 286.0, 287.0], &[0.5, 1.5, 2.5], "K", &[]),
    )
    .unwrap();
    input
}

#[test]
fn a_mixed_folder_ingests_reports_what_disagrees_once_and_stays_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let input = mixed_folder(dir.path());
    let store = dir.path().join("s.atlas");
    let out = atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(&input)
        .arg("--create")
        .arg("-q")
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert_eq!(err.matches("disagree on 3 variables").count(), 1, "{err}");
    for want in [
        r#""temp": units "degC" in 2 datasets ("a", "b"), "K" in 1 dataset ("c")"#,
        r#""time": type Timestamp(ns) in 2 datasets, but Float64 in 1 dataset ("c"): no SQL type holds both"#,
        "also the coordinate of 1 table",
        r#""time": times kept as numbers in 1 dataset ("c"): no units attribute"#,
        "SELECT * FROM _conflicts",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    // Every row of every file is there; only the time of `c` is NULL.
    assert_eq!(
        csv(
            &store,
            "SELECT dataset, count(*), count(time), max(temp) FROM temp GROUP BY dataset ORDER BY dataset"
        ),
        vec!["a,2,2,11.0", "b,1,1,12.0", "c,3,0,287.0"]
    );
    assert_eq!(
        csv(&store, "SELECT * FROM _conflicts ORDER BY \"table\""),
        vec![
            "temp,time,coordinate,c,Float64,Timestamp(ns)",
            "time,time,value,c,Float64,Timestamp(ns)"
        ]
    );
    assert_eq!(
        csv(
            &store,
            "SELECT value FROM _attributes WHERE dataset = 'c' AND array = 'time' AND key = 'atlas_undecoded_time'"
        ),
        vec!["no units attribute (CF times need units like 'days since 1950-01-01')"]
    );
    let info = atlas_sql()
        .arg("info")
        .arg(&store)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains("the datasets disagree on 3 variables"),
        "{info}"
    );
    assert!(info.contains(r#""temp": units "degC""#), "{info}");
    let shell = atlas_sql()
        .args(["--store", store.to_str().unwrap(), "-q"])
        .write_stdin(
            "\\d temp\nSET atlas.type_conflicts = 'exclude';\nSHOW atlas.type_conflicts;\nSELECT count(*) FROM temp;\n",
        )
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let shell = String::from_utf8(shell).unwrap();
    assert!(
        shell.contains("1 dataset does not fit a column's type; atlas.type_conflicts = 'null'")
            && shell.contains(r#"time (Timestamp(ns)): Float64 in 1 dataset ("c")"#),
        "{shell}"
    );
    assert!(shell.contains("atlas.type_conflicts | exclude"), "{shell}");
    // `exclude` leaves `c` out: the rows of `a` and `b`.
    assert!(shell.contains("| 3        |"), "{shell}");
}

#[test]
fn strict_stops_at_the_first_file_that_disagrees_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = mixed_folder(dir.path());
    let store = dir.path().join("s.atlas");
    ingest_new(&store, &input.join("a.nc"));
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(input.join("b.nc"))
        .arg(input.join("c.nc"))
        .arg("--strict")
        .arg("-q")
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("--strict: ").and(predicate::str::contains(
            r#"c.nc: variable "temp" has units "K" here, but "degC" in 2 datasets ("a", "b"); nothing was committed"#,
        )));
    // `b` agreed, but the run stopped before its commit.
    assert_eq!(csv(&store, "SELECT dataset FROM _datasets"), vec!["a"]);
    // A file whose time is not decodable disagrees by type when its units agree.
    let d = dir.path().join("d.nc");
    std::fs::write(&d, profile(&[1.0], &[0.0], "degC", &[])).unwrap();
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(&d)
        .arg("--strict")
        .arg("-q")
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            r#"variable "time" is Float64 here, but Timestamp(ns) in 1 dataset ("a"); no SQL type holds both"#,
        ));
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(input.join("b.nc"))
        .arg("--strict")
        .arg("-q")
        .assert()
        .success()
        .stderr(predicate::str::is_empty());
    assert_eq!(
        csv(&store, "SELECT dataset FROM _datasets ORDER BY dataset"),
        vec!["a", "b"]
    );
}

#[test]
fn times_with_a_calendar_the_decoder_lacks_stay_numbers_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("j.nc");
    std::fs::write(
        &file,
        profile(
            &[1.0, 2.0],
            &[0.0, 1.0],
            "degC",
            &[
                ("units", NcAttr::Text("days since 2000-01-01")),
                ("calendar", NcAttr::Text("julian")),
            ],
        ),
    )
    .unwrap();
    let store = dir.path().join("s.atlas");
    let out = atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(&file)
        .arg("--create")
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(
        err.contains(
            r#""time": times kept as numbers in 1 dataset ("j"): calendar "julian" is not decoded"#
        ),
        "{err}"
    );
    assert_eq!(
        csv(
            &store,
            "SELECT arrow_typeof(time), time FROM temp ORDER BY time_index"
        ),
        vec!["Float64,0.0", "Float64,1.0"]
    );
}

#[test]
fn netcdf4_enums_ingest_as_their_integers_with_cf_flags_and_nul_padded_names_lose_the_nul() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.atlas");
    atlas_sql()
        .arg("ingest")
        .arg(&store)
        .arg(data.join("netcdf-c/ncdump/ref_tst_irish_rover.nc"))
        .arg(data.join("netcdf-c/nctest/ref_nctest_classic.nc"))
        .args(["--create", "-q"])
        .assert()
        .success();
    // Values as h5py reads them: a uint64 enum holding 1000000 then three fills of 0.
    assert_eq!(
        csv(
            &store,
            "SELECT arrow_typeof(\"in_the_hold_of_the_Irish_Rover\"), \"in_the_hold_of_the_Irish_Rover\" \
             FROM \"in_the_hold_of_the_Irish_Rover\" ORDER BY dim_index"
        ),
        vec!["UInt64,1000000", "UInt64,0", "UInt64,0", "UInt64,0"]
    );
    let flags = csv(
        &store,
        "SELECT key, value FROM _attributes WHERE array = 'in_the_hold_of_the_Irish_Rover' ORDER BY key",
    );
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(
        flags[0].starts_with("flag_meanings,bags_of_the_best_Sligo_rags barrels_of_bones "),
        "{flags:?}"
    );
    assert!(
        flags[1].starts_with("flag_values,\"[1000000, 2000000,"),
        "{flags:?}"
    );
    let arrays = csv(
        &store,
        "SELECT array FROM _arrays WHERE dataset = 'ref_nctest_classic' AND array LIKE 'yy%'",
    );
    assert_eq!(arrays, vec!["yy"]);
}
