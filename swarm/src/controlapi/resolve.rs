//! Name-or-ID resolution shared by every resource.

use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::store::tables::Table;
use crate::store::ReadTx;

/// Finds an object by full ID, exact name, or unique ID prefix.
pub fn resolve<T: Table>(tx: &ReadTx<'_>, input: &str) -> Result<T> {
    let t = tx.tables();
    if let Some(o) = t.get::<T>(input) {
        return Ok(o.clone());
    }
    if input.is_empty() {
        return Err(Error::not_found(T::KIND, input));
    }
    if let Some(o) = t.iter::<T>().find(|o| o.name() == Some(input)) {
        return Ok(o.clone());
    }
    let matches: Vec<&T> = t
        .iter::<T>()
        .filter(|o| o.id().starts_with(input))
        .collect();
    match matches.len() {
        1 => Ok(matches[0].clone()),
        0 => Err(Error::not_found(T::KIND, input)),
        n => Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{} {} is ambiguous ({} matches found)",
                T::KIND.word(),
                input,
                n
            ),
        )),
    }
}
