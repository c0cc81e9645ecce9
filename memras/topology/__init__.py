"""Where memory is: the DIMM inventory (EDAC + SMBIOS + ACPI), the memory map,
address location, and lsmem's rendering of the blocks."""
