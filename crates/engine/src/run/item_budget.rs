//! The per-execution limits on transcript items: how many distinct items and how many bytes of them a run may keep,
//! and what happens past them.

use std::collections::{HashMap, HashSet};

use dashboard_core::NewItem;

use super::LogLimit;

/// What is left of one execution's item limits ([`LogLimit::max_items`], [`LogLimit::max_item_bytes`]). It counts
/// distinct item ids, and the bytes of each item as it now stands ([`NewItem::n_bytes`]; an update replaces its
/// item's count). An update of an item it has let through passes as long as the total stays within the bytes (an
/// agent finishing a command it started must be able to say so); a new item past either limit is dropped, and so is
/// every new item after it, the first drop earning one `system` log line that says so. The run goes on.
#[derive(Debug)]
pub(crate) struct ItemBudget {
    max_items: u64,
    max_bytes: u64,
    /// The bytes of each item let through, by id.
    known: HashMap<String, u64>,
    n_bytes: u64,
    is_spent: bool,
    /// The ids of the items let through whose last state let through is in progress.
    open_ids: HashSet<String>,
}

/// What [`ItemBudget::admit`] decided for one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Store it.
    Keep,
    /// Drop it.
    Drop,
    /// Drop it, and log this line: a limit has just been reached.
    DropAndSay(String),
}

impl ItemBudget {
    pub(crate) fn new(limit: LogLimit) -> Self {
        Self {
            max_items: limit.max_items,
            max_bytes: limit.max_item_bytes,
            known: HashMap::new(),
            n_bytes: 0,
            is_spent: false,
            open_ids: HashSet::new(),
        }
    }

    /// Whether an item let through is still in progress, as far as its reports say.
    pub(crate) fn has_open(&self) -> bool {
        !self.open_ids.is_empty()
    }

    /// Whether `item` may be stored.
    pub(crate) fn admit(&mut self, item: &NewItem) -> Admission {
        let admission = self.count(item);
        if admission == Admission::Keep {
            if item.status.is_open() {
                self.open_ids.insert(item.id.clone());
            } else {
                self.open_ids.remove(&item.id);
            }
        }
        admission
    }

    /// Whether `item` fits the limits, counting it if it does.
    fn count(&mut self, item: &NewItem) -> Admission {
        let n_bytes = item.n_bytes() as u64;
        if let Some(kept) = self.known.get_mut(&item.id) {
            let total = self.n_bytes - *kept + n_bytes;
            if total > self.max_bytes {
                return self.spend(format!("{} bytes", self.max_bytes));
            }
            (self.n_bytes, *kept) = (total, n_bytes);
            return Admission::Keep;
        }
        if self.is_spent {
            return Admission::Drop;
        }
        if self.known.len() as u64 >= self.max_items {
            return self.spend(format!("{} items", self.max_items));
        }
        if self.n_bytes + n_bytes > self.max_bytes {
            return self.spend(format!("{} bytes", self.max_bytes));
        }
        self.known.insert(item.id.clone(), n_bytes);
        self.n_bytes += n_bytes;
        Admission::Keep
    }

    /// Drops an item past the `limit`, saying so the first time.
    fn spend(&mut self, limit: String) -> Admission {
        if std::mem::replace(&mut self.is_spent, true) {
            return Admission::Drop;
        }
        Admission::DropAndSay(format!(
            "item limit of {limit} reached: later new items of this execution are dropped"
        ))
    }
}

#[cfg(test)]
mod tests {
    use dashboard_core::{ItemBody, ItemStatus};

    use super::*;

    fn item(id: &str) -> NewItem {
        NewItem::new(id, ItemStatus::InProgress, ItemBody::Reasoning { text: "hm".into() }).expect("an item")
    }

    fn budget(max_items: u64, max_item_bytes: u64) -> ItemBudget {
        ItemBudget::new(LogLimit { max_items, max_item_bytes, ..LogLimit::default() })
    }

    /// Feeds the ids through a budget of `max_items`; what it decided for each.
    fn check(max_items: u64, ids: &[&str], expected: &[&str]) {
        let mut budget = budget(max_items, u64::MAX);
        let decided: Vec<&str> = ids
            .iter()
            .map(|id| match budget.admit(&item(id)) {
                Admission::Keep => "keep",
                Admission::Drop => "drop",
                Admission::DropAndSay(_) => "say",
            })
            .collect();
        assert_eq!(decided, expected, "at most {max_items}: {ids:?}");
    }

    #[test]
    fn past_the_limit_new_items_are_dropped_and_updates_pass() {
        check(2, &["a", "b", "a", "b"], &["keep"; 4]);
        check(2, &["a", "b", "c", "d", "a", "c"], &["keep", "keep", "say", "drop", "keep", "drop"]);
        check(0, &["a", "a"], &["say", "drop"]);
    }

    #[test]
    fn the_line_names_the_limit() {
        let mut budget = budget(1, u64::MAX);
        budget.admit(&item("a"));
        assert_eq!(
            budget.admit(&item("b")),
            Admission::DropAndSay(
                "item limit of 1 items reached: later new items of this execution are dropped".into()
            )
        );
    }

    /// Feeds `(id, text)` items through a budget of `max_item_bytes`; what it decided for each.
    fn check_bytes(max_item_bytes: u64, items: &[(&str, &str)], expected: &[&str]) {
        let mut budget = budget(100, max_item_bytes);
        let decided: Vec<&str> = items
            .iter()
            .map(|(id, text)| {
                let item =
                    NewItem::new(*id, ItemStatus::InProgress, ItemBody::Reasoning { text: (*text).into() });
                match budget.admit(&item.expect("an item")) {
                    Admission::Keep => "keep",
                    Admission::Drop => "drop",
                    Admission::DropAndSay(_) => "say",
                }
            })
            .collect();
        assert_eq!(decided, expected, "at most {max_item_bytes} bytes: {items:?}");
    }

    #[test]
    fn past_the_byte_limit_new_items_are_dropped_and_updates_pass_while_they_fit() {
        // Each item counts its id and its text: "a" + 4 bytes = 5.
        check_bytes(10, &[("a", "xxxx"), ("b", "xxxx"), ("c", "")], &["keep", "keep", "say"]);
        check_bytes(10, &[("a", "xxxx"), ("b", "xxxxxxxxxx"), ("c", "x")], &["keep", "say", "drop"]);
        // An update replaces its item's count: it may grow into what is left, not past it.
        check_bytes(
            10,
            &[("a", "xxxx"), ("a", "xxxxxxxxx"), ("a", "xxxxxxxxxx"), ("a", "")],
            &["keep", "keep", "say", "keep"],
        );
        check_bytes(10, &[("a", "xxxx"), ("a", ""), ("b", "xxxxxxx")], &["keep", "keep", "keep"]);
    }
}
