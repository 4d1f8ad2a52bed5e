//! The README quick start: build a small store of ocean profiles, flush it, reopen it and read
//! one variable across every dataset.
//!
//! ```text
//! cargo run --example quickstart -p atlas-store [STORE_DIR]
//! ```

use atlas_store::ndarray::{Array, Axis, IxDyn};
use atlas_store::{Atlas, Attr, FillValue, StoreConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("atlas-quickstart-{}", std::process::id())),
    };
    if dir.join("atlas.json").exists() {
        return Err(format!(
            "{} already holds a store; pass an empty directory",
            dir.display()
        )
        .into());
    }

    // 1. Create a store and write 100 profiles: temperature on 50 depth levels each.
    let mut atlas = Atlas::create_path(&dir, StoreConfig::default()).await?;
    let start = std::time::Instant::now();
    for i in 0..100 {
        let ds = atlas.create_dataset(&format!("profile_{i:03}")).await?;
        ds.set_attribute(
            "platform",
            Attr::String(format!("float_{}", 5900000 + i % 7)),
        )?;
        ds.define_array::<f32>(
            "temperature",
            vec!["depth".into()],
            vec![50],
            None,
            Some(FillValue::Float(99999.0)),
        )
        .await?;
        // Surface 25 °C, cooling with depth; the deepest 5 levels are missing (fill value).
        let t = Array::from_shape_fn(IxDyn(&[45]), |d| 25.0 - 0.4 * d[0] as f32 - 0.01 * i as f32);
        ds.write_array("temperature", vec![0], t.view()).await?;
        ds.set_array_attribute("temperature", "units", Attr::String("degC".into()))?;
    }
    atlas.flush().await?; // one segment for `temperature`, then one atomic commit
    println!(
        "wrote {} datasets to {} in {:.1?}: {} segment(s), generation {}",
        atlas.list_datasets().len(),
        dir.display(),
        start.elapsed(),
        atlas.list_segments().len(),
        atlas.generation()
    );

    // 2. Reopen (no configuration needed) and read the top 3 levels of every profile at once.
    let atlas = Atlas::open_path(&dir).await?;
    let names = atlas.list_datasets();
    let top = atlas
        .read_array_across_stacked::<f32>("temperature", &names, vec![0], vec![3])
        .await?;
    println!(
        "top-3-level temperature of {} profiles: shape {:?}",
        names.len(),
        top.shape()
    );
    println!(
        "  {}: {:?}",
        names[0],
        top.index_axis(Axis(0), 0).iter().collect::<Vec<_>>()
    );

    // 3. Statistics come from the catalog, with no data read.
    let ds = atlas.open_dataset("profile_042").await?;
    let stats = ds.array_stats("temperature").await.ok_or("no statistics")?;
    println!(
        "profile_042 temperature: min {:?}, max {:?}, {} of {} cells missing",
        stats.min, stats.max, stats.null_count, stats.row_count
    );
    Ok(())
}
