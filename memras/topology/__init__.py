"""Where memory is: the DIMM inventory (EDAC + SMBIOS + ACPI), the memory map, address location, lsmem rendering."""
