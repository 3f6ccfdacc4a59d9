"""The FOCUS Cost and Usage column lists of the versions costwise exports, as the specification lists them.

FOCUS 1.2: https://focus.finops.org/focus-specification/v1-2/ (the rule model the FinOps Foundation's
``focus-validator`` 2.2 ships, ``model-1.2.0.1.json``, checks the same columns).
FOCUS 1.3: https://focus.finops.org/focus-specification/v1-3/ and its column files,
https://github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec/tree/v1.3/specification/datasets/cost_and_usage/columns
(``columns.mdpp`` there includes one file per column). 1.3 introduces ServiceProviderName and HostProviderName
for what ProviderName and PublisherName meant; those two are *deprecated* in 1.3 but still Mandatory ("MUST be
present", not null), so a 1.3 export carries both pairs. 1.3's Allocated* (split cost allocation) and
ContractApplied columns are Conditional on features costwise does not have, so they are absent.
"""

from __future__ import annotations

from enum import StrEnum


class FocusVersion(StrEnum):
    V1_2 = "1.2"
    V1_3 = "1.3"


# Every Cost and Usage column of FOCUS 1.2, in the specification's (alphabetical) order.
COLUMNS_1_2: tuple[str, ...] = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
)

# FOCUS 1.3's Cost and Usage columns: 1.2's plus split cost allocation, contracts and the two provider roles.
COLUMNS_1_3: tuple[str, ...] = tuple(sorted(COLUMNS_1_2 + (
    "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags",
    "ContractApplied", "HostProviderName", "ServiceProviderName",
)))

# The columns FOCUS 1.2 makes Mandatory, with their data types and whether nulls are allowed.
MANDATORY_1_2: dict[str, tuple[str, bool]] = {
    "BilledCost": ("Decimal", False),
    "BillingAccountId": ("String", False),
    "BillingAccountName": ("String", True),
    "BillingCurrency": ("String", False),
    "BillingPeriodEnd": ("DateTime", False),
    "BillingPeriodStart": ("DateTime", False),
    "ChargeCategory": ("String", False),
    "ChargeClass": ("String", True),
    "ChargeDescription": ("String", True),
    "ChargePeriodEnd": ("DateTime", False),
    "ChargePeriodStart": ("DateTime", False),
    "ContractedCost": ("Decimal", False),
    "EffectiveCost": ("Decimal", False),
    "InvoiceIssuerName": ("String", False),
    "ListCost": ("Decimal", False),
    "PricingQuantity": ("Decimal", True),
    "PricingUnit": ("String", True),
    "ProviderName": ("String", False),
    "PublisherName": ("String", False),
    "ServiceCategory": ("String", False),
    "ServiceName": ("String", False),
}
MANDATORY_1_3: dict[str, tuple[str, bool]] = {
    **MANDATORY_1_2, "HostProviderName": ("String", False), "ServiceProviderName": ("String", False),
}

COLUMNS = {FocusVersion.V1_2: COLUMNS_1_2, FocusVersion.V1_3: COLUMNS_1_3}
MANDATORY_BY_VERSION = {FocusVersion.V1_2: MANDATORY_1_2, FocusVersion.V1_3: MANDATORY_1_3}
