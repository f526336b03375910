//! Starts the shared mimic, prints its PID and exits without any cleanup, as a test
//! process does: the test `shared_mimic_dies_with_its_process` checks the kernel
//! then kills mimic.

fn main() {
    println!("{}", xitc_test_support::Mimic::shared().pid());
}
