#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    berth_backend_linux::store::tarindex::fuzz_image_archive(data)
});
