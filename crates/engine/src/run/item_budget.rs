//! The per-execution limit on transcript items: how many distinct items a run may keep, and what happens past it.

use std::collections::HashSet;

use dashboard_core::NewItem;

/// What is left of one execution's item limit. It counts distinct item ids: an update of an item it has let through
/// always passes (an agent finishing a command it started must be able to say so), while a new item past the limit is
/// dropped, and the first one dropped earns one `system` log line that says so. The run goes on.
#[derive(Debug)]
pub(crate) struct ItemBudget {
    max_items: u64,
    known_ids: HashSet<String>,
    is_spent: bool,
}

/// What [`ItemBudget::admit`] decided for one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Store it.
    Keep,
    /// Drop it.
    Drop,
    /// Drop it, and log this line: the limit has just been reached.
    DropAndSay(String),
}

impl ItemBudget {
    pub(crate) fn new(max_items: u64) -> Self {
        Self { max_items, known_ids: HashSet::new(), is_spent: false }
    }

    /// Whether `item` may be stored.
    pub(crate) fn admit(&mut self, item: &NewItem) -> Admission {
        if self.known_ids.contains(&item.id) {
            return Admission::Keep;
        }
        if (self.known_ids.len() as u64) < self.max_items {
            self.known_ids.insert(item.id.clone());
            return Admission::Keep;
        }
        if self.is_spent {
            return Admission::Drop;
        }
        self.is_spent = true;
        Admission::DropAndSay(format!(
            "item limit of {} items reached: later new items of this execution are dropped",
            self.max_items
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

    /// Feeds the ids through a budget of `max_items`; what it decided for each.
    fn check(max_items: u64, ids: &[&str], expected: &[&str]) {
        let mut budget = ItemBudget::new(max_items);
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
        let mut budget = ItemBudget::new(1);
        budget.admit(&item("a"));
        assert_eq!(
            budget.admit(&item("b")),
            Admission::DropAndSay(
                "item limit of 1 items reached: later new items of this execution are dropped".into()
            )
        );
    }
}
