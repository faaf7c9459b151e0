from django.urls import path

from . import views

app_name = "households"

urlpatterns = [
    path("", views.household_list, name="household-list"),
    path("new/", views.household_create, name="household-create"),
    path("export.xlsx", views.household_export, name="household-export"),
    path("<int:pk>/", views.household_detail, name="household-detail"),
    path("<int:pk>/edit/", views.household_edit, name="household-edit"),
    path("<int:pk>/history/", views.household_history, name="household-history"),
    path("<int:pk>/consent/", views.consent_record, name="consent-record"),
    path("<int:pk>/members/new/", views.member_create, name="member-create"),
    path("<int:pk>/members/<int:member_pk>/edit/", views.member_edit, name="member-edit"),
    path("<int:pk>/members/<int:member_pk>/remove/", views.member_remove, name="member-remove"),
    path("<int:pk>/income/new/", views.income_create, name="income-create"),
    path("imports/", views.import_list, name="import-list"),
    path("imports/new/", views.import_create, name="import-create"),
    path("imports/template.xlsx", views.import_template, name="import-template"),
    path("imports/<int:pk>/", views.import_detail, name="import-detail"),
    path("imports/<int:pk>/status.json", views.import_status, name="import-status"),
    path("reports/", views.register_report, name="report"),
    path("reports/refresh/", views.report_refresh, name="report-refresh"),
    path("villages/<str:code>/edit/", views.village_edit, name="village-edit"),
]
