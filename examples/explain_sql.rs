//! Prints Kiln's plan and stage graph for a SQL query over Parquet tables.
//!
//! `cargo run --example explain_sql -- DIR "SELECT ..."`: every subdirectory of DIR is
//! registered as a table of that name.

use kiln::prelude::*;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(sql)) = (args.next(), args.next()) else {
        eprintln!("usage: explain_sql DIR SQL");
        std::process::exit(2);
    };
    let kiln = Session::builder()
        .executors(2)
        .slots_per_executor(1)
        .build()
        .await?;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let name = entry.file_name().to_string_lossy().to_string();
            kiln.register_parquet(&name, &format!("{}/", entry.path().display()))
                .await?;
        }
    }
    let df = kiln.sql(&sql).await?;
    println!("{}", df.explain().await?);
    Ok(())
}
