//! A small store the command-line tests share.

use std::path::Path;

use atlas_store::{Atlas, Attr, FillValue, StoreConfig};
use ndarray::{Array, IxDyn};

/// A small store: three stations with `temp(time)` (fill -99) and a `time` coordinate.
pub fn store(dir: &Path) -> String {
    let path = dir.join("stations.atlas");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut atlas = Atlas::create_path(&path, StoreConfig::default())
            .await
            .unwrap();
        for (i, name) in ["alpha", "bravo", "charlie"].iter().enumerate() {
            let ds = atlas.create_dataset(name).await.unwrap();
            ds.set_attribute("depth_m", Attr::Int64(10 * (i as i64 + 1)))
                .unwrap();
            ds.define_array::<f64>("time", vec!["time".into()], vec![4], None, None)
                .await
                .unwrap();
            let t = Array::from_shape_fn(IxDyn(&[4]), |ix| ix[0] as f64 * 3600.0);
            ds.write_array("time", vec![0], t.view()).await.unwrap();
            ds.define_array::<f32>(
                "temp",
                vec!["time".into()],
                vec![4],
                Some(vec![2]),
                Some(FillValue::Float(-99.0)),
            )
            .await
            .unwrap();
            let v = Array::from_shape_fn(IxDyn(&[4]), |ix| {
                if ix[0] == 3 && i == 1 {
                    -99.0
                } else {
                    10.0 * i as f32 + ix[0] as f32 * 0.5
                }
            });
            ds.write_array("temp", vec![0], v.view()).await.unwrap();
        }
        atlas.flush().await.unwrap();
    });
    path.to_str().unwrap().to_string()
}
